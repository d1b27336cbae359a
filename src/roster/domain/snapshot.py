"""Assemble a Snapshot from streamed records, resolving member DNs to ids."""

from __future__ import annotations

from roster.domain.mapping import normalize_dn
from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped, Snapshot


class SnapshotBuilder:
    """Collects records in any order; duplicates (overlapping paths) count once."""

    def __init__(self) -> None:
        self.users: dict[str, DirectoryUser] = {}
        self.groups: dict[str, DirectoryGroup] = {}
        self.skipped: dict[str, Skipped] = {}
        self._dn_index: dict[str, str] = {}

    def add_user(self, user: DirectoryUser) -> None:
        self.users[user.external_id] = user
        self._dn_index[normalize_dn(user.dn)] = user.external_id

    def add_group(self, group: DirectoryGroup) -> None:
        self.groups[group.external_id] = group
        self._dn_index[normalize_dn(group.dn)] = group.external_id

    def add_skipped(self, skipped: Skipped) -> None:
        self.skipped[skipped.external_id] = skipped

    def __len__(self) -> int:
        return len(self.users) + len(self.groups) + len(self.skipped)

    def build(self) -> Snapshot:
        index = self._dn_index
        memberships: set[tuple[str, str]] = set()
        for ext, group in self.groups.items():
            for dn in group.member_dns:
                member = index.get(dn)
                if member is not None and member != ext:
                    memberships.add((ext, member))
        return Snapshot(
            users=self.users,
            groups=self.groups,
            memberships=frozenset(memberships),
            skipped=tuple(self.skipped.values()),
        )
