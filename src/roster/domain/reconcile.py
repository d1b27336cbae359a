"""reconcile(snapshot, cached) -> ChangeSet. Pure: no I/O, no clock, deterministic.

Rules:
- a user new to the cache is created; one whose content hash differs, or who
  comes back after leaving the directory, is updated (same Roster id);
- a user missing from the snapshot is removed: kept, made inactive, never deleted;
- a group missing from the snapshot is deleted;
- memberships are a set difference.
Every list in the result is sorted by external id, so the result does not
depend on the order in which the directory returned its entries.
"""

from __future__ import annotations

from collections.abc import Mapping

from roster.domain.changes import ChangeSet, GroupUpdate, UserUpdate
from roster.domain.records import CachedState, DirectoryGroup, DirectoryUser, Snapshot


def diff_users(
    records: Mapping[str, DirectoryUser], cached: CachedState
) -> tuple[list[DirectoryUser], list[UserUpdate]]:
    """New users, and known ones whose content changed or who come back (sorted by id)."""
    created, updated = [], []
    for ext in sorted(records):
        record = records[ext]
        previous = cached.users.get(ext)
        if previous is None:
            created.append(record)
        elif previous.content_hash != record.content_hash or not previous.present:
            updated.append(UserUpdate(previous, record))
    return created, updated


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


def reconcile(snapshot: Snapshot, cached: CachedState) -> ChangeSet:
    users_created, users_updated = diff_users(snapshot.users, cached)
    users_removed = [
        cached.users[ext]
        for ext in sorted(cached.users)
        if cached.users[ext].present and ext not in snapshot.users
    ]
    groups_created, groups_updated = diff_groups(snapshot.groups, cached)
    groups_deleted = [cached.groups[ext] for ext in sorted(cached.groups) if ext not in snapshot.groups]

    return ChangeSet(
        users_created=tuple(users_created),
        users_updated=tuple(users_updated),
        users_removed=tuple(users_removed),
        groups_created=tuple(groups_created),
        groups_updated=tuple(groups_updated),
        groups_deleted=tuple(groups_deleted),
        members_added=tuple(sorted(snapshot.memberships - cached.memberships)),
        members_removed=tuple(sorted(cached.memberships - snapshot.memberships)),
        skipped=tuple(sorted(snapshot.skipped, key=lambda s: (s.external_id, s.dn))),
        ignored_members=snapshot.ignored_members,
        foreign_members=snapshot.foreign_members,
    )
