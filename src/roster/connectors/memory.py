"""An in-memory directory and its connector, shipped for connector authors and host applications.

``MemoryDirectory`` holds users, groups and memberships by id (no DNs, like Microsoft Graph
and SCIM), records every change in a journal, and is itself a connector:

- ``snapshot()`` reads everything, as any full read;
- ``changes(cursor)`` gives a delta since any earlier cursor of this directory: whole records of
  the users and groups that changed (with the groups that list them: a record may be one that
  comes back, whose memberships the cache let go), and the membership changes either as operations by id
  (``delta_style="operations"``, what Graph's ``members@delta`` and SCIM PATCH give) or as the
  whole member lists of the groups they touched (``delta_style="lists"``, what an LDAP re-read
  gives); a cursor from another directory, or one it never gave, asks for a full read (``None``);
- ``fail_with(error)`` makes the next reads fail, to try a host application's error handling.

Attributes are mapped as LDAP attributes are (``mail``, ``displayName``, ``givenName``, ``sn``,
``uid``, ``title``, ``telephoneNumber``; groups ``cn`` and ``description``), so a user without an
e-mail address is skipped here exactly as there.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from roster.connectors.base import ConnectionReport, ConnectorError, Progress
from roster.domain.delta import Delta, MemberOp, MemberOpKind
from roster.domain.mapping import AttributeMapping, map_group, map_user
from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped, Snapshot
from roster.domain.snapshot import SnapshotBuilder

Attributes = Mapping[str, list[str]]
DeltaStyle = Literal["operations", "lists"]
_instances = itertools.count(1)


@dataclass
class _Entry:
    attributes: dict[str, list[str]]
    active: bool = True


@dataclass
class _Journal:
    version: int = 0
    records: list[tuple[int, str]] = field(default_factory=list)  # (version, id) of a record change
    ops: list[tuple[int, MemberOp]] = field(default_factory=list)


class MemoryDirectory:
    def __init__(
        self, delta_style: DeltaStyle = "operations", mapping: AttributeMapping | None = None
    ) -> None:
        self.delta_style: DeltaStyle = delta_style
        self.mapping = mapping or AttributeMapping()
        self.users: dict[str, _Entry] = {}
        self.groups: dict[str, _Entry] = {}
        self.members: dict[str, set[str]] = {}  # group id -> member ids (users and groups)
        self._journal = _Journal()
        self._name = f"memory-{next(_instances)}"
        self._lock = threading.Lock()
        self._error: ConnectorError | None = None

    # Changing the directory
    def put_user(self, external_id: str, attributes: Attributes, *, active: bool = True) -> None:
        """Create or replace a user; ``attributes`` as LDAP names them (``{"mail": ["a@x"]}``)."""
        with self._lock:
            if external_id in self.groups:
                raise ValueError(f"external_id: {external_id!r} is already a group")
            self.users[external_id] = _Entry({k: list(v) for k, v in attributes.items()}, active)
            self._record(external_id)

    def put_group(self, external_id: str, attributes: Attributes) -> None:
        with self._lock:
            if external_id in self.users:
                raise ValueError(f"external_id: {external_id!r} is already a user")
            self.groups[external_id] = _Entry({k: list(v) for k, v in attributes.items()})
            self.members.setdefault(external_id, set())
            self._record(external_id)

    def remove(self, external_id: str) -> None:
        """Delete a user or group, and every membership it had (on either side)."""
        with self._lock:
            if self.users.pop(external_id, None) is None and self.groups.pop(external_id, None) is None:
                raise KeyError(external_id)
            for group, members in sorted(self.members.items()):
                if external_id in members:
                    self._member_op(MemberOpKind.REMOVE, group, external_id)
            for member in sorted(self.members.get(external_id, set())):  # a group's own members too
                self._member_op(MemberOpKind.REMOVE, external_id, member)
            self.members.pop(external_id, None)
            self._record(external_id)

    def add_member(self, group: str, member: str) -> None:
        with self._lock:
            if group not in self.groups or (member not in self.users and member not in self.groups):
                raise KeyError(f"{group} or {member} is not in this directory")
            if member != group and member not in self.members[group]:
                self._member_op(MemberOpKind.ADD, group, member)

    def remove_member(self, group: str, member: str) -> None:
        with self._lock:
            if member in self.members.get(group, set()):
                self._member_op(MemberOpKind.REMOVE, group, member)

    def fail_with(self, error: ConnectorError | None) -> None:
        """Every read fails with ``error`` until this is called with None."""
        self._error = error

    def _record(self, external_id: str) -> None:
        self._journal.version += 1
        self._journal.records.append((self._journal.version, external_id))

    def _member_op(self, kind: MemberOpKind, group: str, member: str) -> None:
        if kind is MemberOpKind.ADD:
            self.members[group].add(member)
        else:
            self.members[group].discard(member)
        self._journal.version += 1
        self._journal.ops.append((self._journal.version, MemberOp(kind, group, member)))

    # The connector
    def snapshot(
        self, progress: Progress | None = None, previous: Mapping[str, str] | None = None
    ) -> Snapshot:
        self._check()
        with self._lock:
            builder = SnapshotBuilder()
            for ext in sorted(self.users):
                self._add_user(builder, ext)
            for ext in sorted(self.groups):
                builder.add_group(self._group(ext, with_members=True))
            cursor = self._cursor()
        if progress is not None:
            progress(len(builder))
        return replace(builder.build(), cursor=cursor)

    def changes(self, cursor: str, progress: Progress | None = None) -> Delta | None:
        self._check()
        name, _, version_text = cursor.rpartition(":")
        if name != self._name or not version_text.isdigit():
            return None
        since = int(version_text)
        with self._lock:
            if since > self._journal.version:
                return None
            return self._delta(since)

    def test(self) -> ConnectionReport:
        if self._error is not None:
            return ConnectionReport(False, self._name, str(self._error))
        return ConnectionReport(True, self._name, f"{len(self.users)} users, {len(self.groups)} groups")

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _cursor(self) -> str:
        return f"{self._name}:{self._journal.version}"

    def _delta(self, since: int) -> Delta:
        changed = {ext for version, ext in self._journal.records if version > since}
        ops = [op for version, op in self._journal.ops if version > since]
        builder = SnapshotBuilder()
        groups: dict[str, DirectoryGroup] = {}
        lists = self.delta_style == "lists"
        relisted = {op.group for op in ops} if lists else set()
        for ext in sorted(changed | relisted):
            if ext in self.users:
                self._add_user(builder, ext)
            elif ext in self.groups:
                groups[ext] = self._group(ext, with_members=lists)
        gone = {ext for ext in changed if ext not in self.users and ext not in self.groups}
        # A changed record may be one that comes back (provisionable again, or restored): the
        # cache dropped its memberships, so its parents are stated in full.
        parents = {ext: self._parents(ext) for ext in (*builder.users, *groups) if ext in changed}
        return Delta(
            cursor=self._cursor(),
            users=builder.users,
            groups=groups,
            member_of=parents,
            removed=frozenset(gone),
            skipped=tuple(builder.skipped.values()),
            member_ops=() if lists else tuple(ops),
        )

    def _parents(self, ext: str) -> tuple[str, ...]:
        return tuple(sorted(g for g, members in self.members.items() if ext in members))

    def _add_user(self, builder: SnapshotBuilder, ext: str) -> None:
        record = self.user_record(ext)
        if isinstance(record, Skipped):
            builder.add_skipped(record)
        else:
            builder.add_user(record)

    def user_record(self, ext: str) -> DirectoryUser | Skipped:
        entry = self.users[ext]
        return map_user(ext, None, entry.active, entry.attributes, self.mapping)

    def _group(self, ext: str, *, with_members: bool) -> DirectoryGroup:
        members = tuple(sorted(self.members[ext])) if with_members else None
        group = map_group(ext, None, self.groups[ext].attributes, members or (), self.mapping)
        return group if with_members else _without_members(group)


def _without_members(group: DirectoryGroup) -> DirectoryGroup:
    return replace(group, member_refs=None)
