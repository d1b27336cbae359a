"""reconcile_delta(delta, cached, dns) -> ChangeSet: an incremental run's changes. Pure.

A delta holds complete records of the objects that changed, never fragments:
- every changed or new user and group, as a full record (a group with its whole member list);
- for each of them, ``member_of``: the DNs of all groups that list it;
- the ids that left: deleted, moved out of the search paths, or no longer provisionable.

Memberships are recomputed for the objects the delta touches, from both sides
(a changed group's members, and the groups listing a changed object), so the
result equals what a full read would give for those objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from roster.domain.changes import ChangeSet
from roster.domain.mapping import normalize_dn
from roster.domain.reconcile import diff_groups, diff_users
from roster.domain.records import CachedState, DirectoryGroup, DirectoryUser, Skipped


@dataclass(frozen=True)
class Delta:
    cursor: str
    users: Mapping[str, DirectoryUser] = field(default_factory=dict)
    groups: Mapping[str, DirectoryGroup] = field(default_factory=dict)
    member_of: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    skipped: tuple[Skipped, ...] = ()

    @property
    def touched(self) -> frozenset[str]:
        return (
            frozenset(self.users)
            | frozenset(self.groups)
            | self.removed
            | {s.external_id for s in self.skipped}
        )


def reconcile_delta(delta: Delta, cached: CachedState, dns: Mapping[str, str]) -> ChangeSet:
    """``dns`` maps normalized DNs to external ids of the cached objects still in the directory."""
    touched = delta.touched
    gone = delta.removed | {s.external_id for s in delta.skipped}
    index = {dn: ext for dn, ext in dns.items() if ext not in touched}
    for user in delta.users.values():
        index[normalize_dn(user.dn)] = user.external_id
    for group in delta.groups.values():
        index[normalize_dn(group.dn)] = group.external_id
    live_groups = (set(cached.groups) - gone) | set(delta.groups)

    users_created, users_updated = diff_users(delta.users, cached)
    users_removed = [cached.users[e] for e in sorted(gone) if e in cached.users and cached.users[e].present]
    groups_created, groups_updated = diff_groups(delta.groups, cached)
    groups_deleted = [cached.groups[e] for e in sorted(gone) if e in cached.groups]

    new_pairs: set[tuple[str, str]] = set()
    for ext, group in delta.groups.items():
        for dn in group.member_dns:
            member = index.get(dn)
            if member is not None and member != ext:
                new_pairs.add((ext, member))
    for ext, parents in delta.member_of.items():
        if ext in gone:
            continue
        for dn in parents:
            parent = index.get(dn)
            if parent is not None and parent != ext and parent in live_groups:
                new_pairs.add((parent, ext))
    old_pairs = {(g, m) for g, m in cached.memberships if g in touched or m in touched}
    return ChangeSet(
        users_created=tuple(users_created),
        users_updated=tuple(users_updated),
        users_removed=tuple(users_removed),
        groups_created=tuple(groups_created),
        groups_updated=tuple(groups_updated),
        groups_deleted=tuple(groups_deleted),
        members_added=tuple(sorted(new_pairs - old_pairs)),
        members_removed=tuple(sorted(old_pairs - new_pairs)),
        skipped=tuple(sorted(delta.skipped, key=lambda s: (s.external_id, s.dn))),
    )
