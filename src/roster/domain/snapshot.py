"""Assemble a Snapshot from streamed records, resolving member references (DNs or ids) to ids."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from roster.domain.mapping import members_digest
from roster.domain.pairs import PairRuns
from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped, Snapshot, ref_key


class SnapshotBuilder:
    """Collects records in any order; duplicates (overlapping paths) count once."""

    def __init__(self, users: MutableMapping[str, DirectoryUser] | None = None) -> None:
        """``users``: where decoded users go (a spool keeps a large read's users out of memory)."""
        self.users: MutableMapping[str, DirectoryUser] = {} if users is None else users
        self.groups: dict[str, DirectoryGroup] = {}
        self.skipped: dict[str, Skipped] = {}
        self._dn_index: dict[str, str] = {}
        self._group_keys: dict[str, str] = {}  # e.g. a group's SID -> its external id
        self._primary: list[tuple[str, str]] = []  # (user external id, group key)
        self.unchanged: dict[str, str] = {}  # external id -> fingerprint of an entry not decoded

    def add_unchanged_user(self, external_id: str, dn: str | None, fingerprint: str) -> None:
        """A user whose entry is exactly as cached: known by id and DN, not decoded again."""
        self.unchanged[external_id] = fingerprint
        self._dn_index[ref_key(external_id, dn)] = external_id

    def add_user(self, user: DirectoryUser) -> None:
        self.users[user.external_id] = user
        self._dn_index[ref_key(user.external_id, user.dn)] = user.external_id

    def add_group(self, group: DirectoryGroup) -> None:
        self.groups[group.external_id] = group
        self._dn_index[ref_key(group.external_id, group.dn)] = group.external_id

    def add_skipped(self, skipped: Skipped) -> None:
        self.skipped[skipped.external_id] = skipped

    def set_group_key(self, group_ext: str, key: str) -> None:
        """A second name for a group that users can refer to (AD: the group's SID)."""
        self._group_keys[key] = group_ext

    def add_primary_group(self, user_ext: str, key: str) -> None:
        """A membership the group does not list (AD: the user's primaryGroupID)."""
        self._primary.append((user_ext, key))

    @property
    def primary_groups(self) -> list[tuple[str, str]]:
        """(user external id, group key) pairs recorded with add_primary_group."""
        return list(self._primary)

    def __len__(self) -> int:
        return len(self.users) + len(self.groups) + len(self.skipped) + len(self.unchanged)

    def build(self, is_foreign: Callable[[str], bool] = lambda _dn: False) -> Snapshot:
        """Resolve member references; count members outside the search paths and foreign principals.
        A snapshot's groups always carry their member lists (``member_refs`` None counts as empty)."""
        index = self._dn_index
        skipped_dns = {ref_key(s.external_id, s.dn) for s in self.skipped.values()}
        primary: dict[str, list[str]] = {}
        for user_ext, key in self._primary:
            group_ext = self._group_keys.get(key)
            if group_ext is not None and (user_ext in self.users or user_ext in self.unchanged):
                primary.setdefault(group_ext, []).append(user_ext)
        runs: dict[str, tuple[str, ...]] = {}  # one group's member set at a time, then its sorted run
        digests: dict[str, str] = {}
        ignored = foreign = 0
        for ext, group in self.groups.items():
            found = set(primary.get(ext, ()))
            for dn in group.member_refs or ():
                member = index.get(dn)
                if member is not None:
                    if member != ext:
                        found.add(member)
                elif is_foreign(dn):
                    foreign += 1
                elif dn not in skipped_dns:
                    ignored += 1
            run = runs[ext] = tuple(sorted(found))
            digests[ext] = members_digest(run)
        return Snapshot(
            users=self.users,
            groups=self.groups,
            memberships=PairRuns.from_sorted(runs),
            member_digests=digests,
            skipped=tuple(self.skipped.values()),
            ignored_members=ignored,
            foreign_members=foreign,
            unchanged={e: h for e, h in self.unchanged.items() if e not in self.users},
        )
