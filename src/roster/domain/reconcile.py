"""reconcile(snapshot, cached) -> ChangeSet. Pure: no I/O, no clock, deterministic.

Rules:
- a user new to the cache is created; one whose content hash differs, or who
  comes back after leaving the directory, is updated (same Roster id);
- a user missing from the snapshot is removed: kept, made inactive, never deleted;
- a user the read did not decode (``snapshot.unchanged``: same fingerprint) is as cached;
- a group missing from the snapshot is deleted;
- memberships are a set difference, taken only for the groups whose member digest differs
  from the stored one (an unchanged group's members need not even be loaded).
Every list in the result is sorted by external id, so the result does not
depend on the order in which the directory returned its entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from roster.domain.changes import ChangeSet, GroupUpdate, UserUpdate
from roster.domain.mapping import members_digest
from roster.domain.pairs import PairRuns, difference
from roster.domain.records import CachedState, DirectoryGroup, DirectoryUser, KeyedRecords, Snapshot


def diff_users(
    records: Mapping[str, DirectoryUser], cached: CachedState
) -> tuple[KeyedRecords, list[UserUpdate]]:
    """New users, and known ones whose content changed or who come back (sorted by id). New users
    are named, not read: ``records`` may hold them outside memory (a spooled read)."""
    created, updated = [], []
    for ext in sorted(records):
        previous = cached.users.get(ext)
        if previous is None:
            created.append(ext)
            continue
        record = records[ext]
        if previous.content_hash != record.content_hash or not previous.present:
            updated.append(UserUpdate(previous, record))
    return KeyedRecords(records, tuple(created)), updated


def diff_groups(
    records: Mapping[str, DirectoryGroup], cached: CachedState
) -> tuple[list[DirectoryGroup], list[GroupUpdate]]:
    created, updated = [], []
    for ext in sorted(records):
        group = records[ext]
        previous = cached.groups.get(ext)
        if previous is None:
            created.append(group)
        elif previous.content_hash != group.content_hash:
            updated.append(GroupUpdate(previous, group))
    return created, updated


def member_digests(groups: Iterable[str], memberships: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``members_digest`` of each group (for snapshots that do not carry them)."""
    members: dict[str, list[str]] = {g: [] for g in groups}
    for group, member in memberships:
        members[group].append(member)
    return {g: members_digest(m) for g, m in members.items()}


def snapshot_digests(snapshot: Snapshot) -> Mapping[str, str]:
    if snapshot.member_digests or not snapshot.groups:
        return snapshot.member_digests
    return member_digests(snapshot.groups, snapshot.memberships)


def stale_groups(digests: Mapping[str, str], cached: CachedState) -> frozenset[str]:
    """Cached groups whose stored members may differ from the snapshot's (or that are gone)."""
    return frozenset(
        ext
        for ext, group in cached.groups.items()
        if group.members_hash is None or digests.get(ext) != group.members_hash
    )


class StaleCache(RuntimeError):
    """The read skipped users by fingerprints that the cache no longer holds."""


def reconcile(snapshot: Snapshot, cached: CachedState, digests: Mapping[str, str] | None = None) -> ChangeSet:
    """``digests``: ``member_digests`` of the snapshot, when the caller already has them."""
    for ext, fingerprint in snapshot.unchanged.items():
        seen = cached.users.get(ext)
        if seen is None or not seen.present or seen.source_hash != fingerprint:
            raise StaleCache(f"the cache changed while the directory was read (user {ext}); run again")
    if digests is None:
        digests = snapshot_digests(snapshot)
    users_created, users_updated = diff_users(snapshot.users, cached)
    users_removed = [
        cached.users[ext]
        for ext in sorted(cached.users)
        if cached.users[ext].present and ext not in snapshot.users and ext not in snapshot.unchanged
    ]
    groups_created, groups_updated = diff_groups(snapshot.groups, cached)
    groups_deleted = [cached.groups[ext] for ext in sorted(cached.groups) if ext not in snapshot.groups]
    loaded = cached.membership_groups
    # None: every group's memberships were loaded; else only these groups' (the others' digests matched)
    relevant = None if loaded is None else loaded | (snapshot.groups.keys() - cached.groups.keys())
    added, removed = difference(PairRuns.of(snapshot.memberships), PairRuns.of(cached.memberships), relevant)
    hashes = {
        ext: digest
        for ext, digest in digests.items()
        if ext not in cached.groups or cached.groups[ext].members_hash != digest
    }

    return ChangeSet(
        users_created=users_created,
        users_updated=tuple(users_updated),
        users_removed=tuple(users_removed),
        groups_created=tuple(groups_created),
        groups_updated=tuple(groups_updated),
        groups_deleted=tuple(groups_deleted),
        members_added=added,
        members_removed=removed,
        skipped=tuple(sorted(snapshot.skipped, key=lambda s: (s.external_id, s.dn or ""))),
        ignored_members=snapshot.ignored_members,
        foreign_members=snapshot.foreign_members,
        member_hashes=hashes,
        source_hashes=_new_fingerprints(snapshot, cached),
    )


def _new_fingerprints(snapshot: Snapshot, cached: CachedState) -> dict[str, str]:
    out: dict[str, str] = {}
    for ext, seen in cached.users.items():
        if ext not in snapshot.users:
            continue
        record = snapshot.users[ext]
        if (
            record.source_hash is not None
            and seen.present
            and seen.content_hash == record.content_hash
            and seen.source_hash != record.source_hash
        ):
            out[seen.roster_id] = record.source_hash
    return out
