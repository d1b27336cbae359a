"""reconcile_delta(delta, cached, refs) -> ChangeSet: what a batch of changes does. Pure.

A delta says what changed since a cursor, in whichever of these forms its source has:
- whole records of the users and groups that changed or are new; a group's record carries
  its whole member list (``member_refs``), or ``None`` when the delta does not give it;
- ``member_of``: for an object, the references of *every* group that lists it (LDAP reads
  this back-link; an object with an entry here has its parent memberships recomputed). An
  object that comes back (restored, or provisionable again) needs it: while it was gone the
  cache let its memberships go, and operations only name what changed since;
- membership operations by the source's ids ("add member X to group G", "remove X from
  G"), applied in order after the lists: what Microsoft Graph's ``members@delta`` and a
  SCIM PATCH give, without the group's whole member list;
- the ids that left (deleted, moved out of scope, no longer provisionable), and ``present``:
  when set, every id that still exists (what is cached and not listed there has left).

The result equals what a full read of the directory would give for the objects the delta
touches: the membership lists it carries replace what is cached, the operations change
exactly the pairs they name, and nothing else is looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from roster.domain.changes import ChangeSet
from roster.domain.pairs import PairRuns
from roster.domain.reconcile import diff_groups, diff_users
from roster.domain.records import CachedState, DirectoryGroup, DirectoryUser, Skipped, ref_key


class MemberOpKind(StrEnum):
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class MemberOp:
    """Add or remove one member (a user's or a group's external id) of one group (its external id)."""

    op: MemberOpKind
    group: str
    member: str


@dataclass(frozen=True)
class Delta:
    """Changes since a cursor. ``cursor``: where the next delta continues from (None: the
    source keeps no cursor, as SCIM; the directory's stored cursor is left as it is)."""

    cursor: str | None = None
    users: Mapping[str, DirectoryUser] = field(default_factory=dict)
    groups: Mapping[str, DirectoryGroup] = field(default_factory=dict)
    member_of: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    skipped: tuple[Skipped, ...] = ()
    member_ops: tuple[MemberOp, ...] = ()
    present: frozenset[str] | None = None

    @property
    def touched(self) -> frozenset[str]:
        """The objects whose own record (or departure) this delta reports."""
        return (
            frozenset(self.users)
            | frozenset(self.groups)
            | self.removed
            | {s.external_id for s in self.skipped}
        )

    @property
    def listed(self) -> frozenset[str]:
        """Objects whose memberships the delta states in full, on one side or the other."""
        gone = self.removed | {s.external_id for s in self.skipped}
        full_groups = {e for e, g in self.groups.items() if g.member_refs is not None}
        return frozenset(full_groups) | frozenset(self.member_of) | gone

    @property
    def named_ids(self) -> frozenset[str]:
        """Every id whose cached state the delta needs: its records, what left, the objects whose
        parents it states, and every id a membership operation names."""
        ops = {i for op in self.member_ops for i in (op.group, op.member)}
        return self.touched | frozenset(self.member_of) | ops

    def named_refs(self) -> frozenset[str]:
        """The member and parent references the lists name (to be resolved through the cache)."""
        refs = {r for g in self.groups.values() for r in (g.member_refs or ())}
        refs.update(r for parents in self.member_of.values() for r in parents)
        return frozenset(refs)


def with_present(delta: Delta, known: Iterable[str]) -> Delta:
    """Resolve ``present`` against the cached ids: what is known and no longer present has left."""
    if delta.present is None:
        return delta
    reported = delta.present | frozenset(delta.users) | frozenset(delta.groups)
    return replace(delta, removed=delta.removed | (frozenset(known) - reported), present=None)


def reconcile_delta(delta: Delta, cached: CachedState, refs: Mapping[str, str]) -> ChangeSet:
    """``cached`` holds the touched and operated-on objects and every membership involving a
    ``listed`` object or named by an operation; ``refs`` maps references (normalized DNs or
    ids) to the external ids of cached objects still in the directory."""
    if delta.present is not None:
        raise ValueError("resolve Delta.present with with_present() before reconciling")
    touched = delta.touched
    gone = delta.removed | {s.external_id for s in delta.skipped}
    index = {ref: ext for ref, ext in refs.items() if ext not in touched}
    for ext, user in delta.users.items():
        index[ref_key(ext, user.dn)] = ext
    for ext, group in delta.groups.items():
        index[ref_key(ext, group.dn)] = ext
    live_groups = (set(cached.groups) - gone) | set(delta.groups)

    users_created, users_updated = diff_users(delta.users, cached)
    users_removed = [cached.users[e] for e in sorted(gone) if e in cached.users and cached.users[e].present]
    groups_created, groups_updated = diff_groups(delta.groups, cached)
    groups_deleted = [cached.groups[e] for e in sorted(gone) if e in cached.groups]

    pairs: set[tuple[str, str]] = set()
    for ext, group in delta.groups.items():
        for ref in group.member_refs or ():
            member = index.get(ref)
            if member is not None and member != ext:
                pairs.add((ext, member))
    live_members = _live_members(delta, cached, gone, live_groups)
    for ext, parents in delta.member_of.items():
        if ext not in live_members:
            continue  # gone, or not in the directory: it has no memberships
        for ref in parents:
            parent = index.get(ref)
            if parent is not None and parent != ext and parent in live_groups:
                pairs.add((parent, ext))
    # a whole member list restates a group's members; member_of restates an object's parents
    full_lists = {e for e, g in delta.groups.items() if g.member_refs is not None} | gone
    parents_given = frozenset(delta.member_of) | gone
    in_scope = {(g, m) for g, m in cached.memberships if g in full_lists or m in parents_given}
    before = set(in_scope)
    operated = {(op.group, op.member) for op in delta.member_ops} & cached.memberships
    before |= operated
    pairs |= operated - in_scope  # a pair no list restates starts as cached
    for op in delta.member_ops:
        pair = (op.group, op.member)
        if op.op is MemberOpKind.REMOVE:
            pairs.discard(pair)
        elif op.group in live_groups and op.member in live_members and op.member != op.group:
            pairs.add(pair)
    return ChangeSet(
        users_created=users_created,
        users_updated=tuple(users_updated),
        users_removed=tuple(users_removed),
        groups_created=tuple(groups_created),
        groups_updated=tuple(groups_updated),
        groups_deleted=tuple(groups_deleted),
        members_added=PairRuns.of(pairs - before),
        members_removed=PairRuns.of(before - pairs),
        skipped=tuple(sorted(delta.skipped, key=lambda s: (s.external_id, s.dn or ""))),
    )


def _live_members(delta: Delta, cached: CachedState, gone: frozenset[str], live_groups: set[str]) -> set[str]:
    """Ids that may be members after this delta: users in the directory, and live groups."""
    users = {e for e, u in cached.users.items() if u.present} | set(delta.users)
    return (users - gone) | live_groups
