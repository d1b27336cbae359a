"""The writer of one run: its sync-log entries and its events, buffered and written in chunks.

``log_plan`` writes, with the same writer, what a change set would do (dry runs and runs the
deletion guard holds), applying nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from roster.domain.changes import ChangeKind, ChangeSet
from roster.domain.pairs import PairRuns
from roster.events.outbox import Outbox
from roster.events.payloads import group_payload, user_payload
from roster.ids import new_ids
from roster.store.bulk import insert_many
from roster.store.rows import load_rows
from roster.store.schema import directory_groups, directory_users, sync_log

LOG_CHUNK = 5000


@dataclass(frozen=True)
class Touched:
    """Roster ids of what a run changed: what the account and group pass must look at again."""

    users: frozenset[str] = frozenset()  # created, updated or gone
    groups: frozenset[str] = frozenset()  # created, updated or deleted
    # external id -> Roster id of the users and groups the run knew (cached or created)
    user_ids: Mapping[str, str] = field(default_factory=dict)
    group_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    directory_id: str
    organization_id: str
    run_id: str


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Writer:
    """Buffers one run's sync-log entries and events, and the rows and event JSON it has read."""

    def __init__(self, conn: Connection, target: Target, now: datetime) -> None:
        self.conn, self.target, self.now = conn, target, now
        self.outbox = Outbox(conn, target.organization_id, target.directory_id, now)
        self.log: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {}  # roster id -> row
        self.groups: dict[str, dict[str, Any]] = {}
        self.user_texts: dict[str, str] = {}  # roster id -> event JSON (dropped when the row changes)
        self.group_texts: dict[str, str] = {}
        # roster id -> ref of its stored version, which membership events name (users this run
        # created keep only this: their JSON is stored once and not held)
        self.user_refs: dict[str, str] = {}
        self.group_refs: dict[str, str] = {}

    def event(self, kind: str, data: str) -> None:
        self.outbox.add(kind, data)

    def note(
        self,
        change: ChangeKind,
        object_type: str,
        object_id: str | None,
        ext: str | None,
        detail: Any,
    ) -> None:
        self.log.append(
            {
                "change": str(change),
                "object_type": object_type,
                "object_id": object_id,
                "external_id": ext,
                "detail": dumps(detail),
            }
        )
        if len(self.log) >= LOG_CHUNK:
            self.flush_log()

    def user_json(self, rid: str) -> str:
        text = self.user_texts.get(rid)
        if text is None:
            text = self.user_texts[rid] = dumps(user_payload(self.users[rid], raw=False))
        return text

    def group_json(self, rid: str) -> str:
        text = self.group_texts.get(rid)
        if text is None:
            text = self.group_texts[rid] = dumps(group_payload(self.groups[rid], raw=False))
        return text

    def user_ref(self, rid: str) -> str:
        ref = self.user_refs.get(rid)
        if ref is None:
            ref = self.user_refs[rid] = self.outbox.ref(self.user_json(rid))
        return ref

    def group_ref(self, rid: str) -> str:
        ref = self.group_refs.get(rid)
        if ref is None:
            ref = self.group_refs[rid] = self.outbox.ref(self.group_json(rid))
        return ref

    def forget(self, object_type: str, rid: str) -> None:
        """A row that changed: its JSON and version must be made again from the new row."""
        texts, refs = (
            (self.user_texts, self.user_refs)
            if object_type == "user"
            else (self.group_texts, self.group_refs)
        )
        texts.pop(rid, None)
        refs.pop(rid, None)

    def need_users(self, ids: set[str]) -> None:
        """Rows of these users, unless held (or their version is: users this run created)."""
        missing = ids - self.users.keys() - self.user_texts.keys() - self.user_refs.keys()
        if missing:
            self.users.update(load_rows(self.conn, directory_users, missing))

    def need_groups(self, ids: set[str]) -> None:
        missing = ids - self.groups.keys()
        if missing:
            self.groups.update(load_rows(self.conn, directory_groups, missing))

    def flush_log(self) -> None:
        t = self.target
        if self.log:
            ids = new_ids("log", len(self.log))
            for log_id, entry in zip(ids, self.log, strict=True):
                entry.update(id=log_id, run_id=t.run_id, directory_id=t.directory_id, created_at=self.now)
            insert_many(self.conn, sync_log, self.log)
            self.log = []

    def flush(self) -> None:
        self.flush_log()
        self.outbox.flush()


def note_skipped(w: Writer, changes: ChangeSet) -> None:
    for note in changes.notes:
        w.note(ChangeKind.NOTE, "run", None, None, {"note": note})
    for skipped in changes.skipped:
        w.note(
            ChangeKind.SKIPPED,
            "user",
            None,
            skipped.external_id,
            {"dn": skipped.dn, "reason": skipped.reason},
        )


def log_plan(conn: Connection, target: Target, changes: ChangeSet, now: datetime) -> None:
    """Log what ``changes`` would do, applying nothing (dry runs and runs the guard stopped)."""
    w = Writer(conn, target, now)
    for user in changes.users_created:
        w.note(
            ChangeKind.USER_CREATED, "user", None, user.external_id, {"email": user.email, "name": user.name}
        )
    for update in changes.users_updated:
        r = update.record
        w.note(
            ChangeKind.USER_UPDATED,
            "user",
            update.previous.roster_id,
            r.external_id,
            {"email": r.email, "name": r.name, "deactivates": update.deactivates},
        )
    for gone in changes.users_removed:
        w.note(
            ChangeKind.USER_REMOVED,
            "user",
            gone.roster_id,
            gone.external_id,
            {"reason": "no longer in the directory"},
        )
    for group in changes.groups_created:
        w.note(ChangeKind.GROUP_CREATED, "group", None, group.external_id, {"name": group.name})
    for gupdate in changes.groups_updated:
        w.note(
            ChangeKind.GROUP_UPDATED,
            "group",
            gupdate.previous.roster_id,
            gupdate.record.external_id,
            {"name": gupdate.record.name},
        )
    for cgroup in changes.groups_deleted:
        w.note(ChangeKind.GROUP_DELETED, "group", cgroup.roster_id, cgroup.external_id, {})
    for kind, pairs in (
        (ChangeKind.MEMBER_ADDED, changes.members_added),
        (ChangeKind.MEMBER_REMOVED, changes.members_removed),
    ):
        for group_ext, members in _runs_of(pairs):
            w.note(kind, "membership", None, group_ext, {"group_idp_id": group_ext, "members": members})
    note_skipped(w, changes)
    w.flush_log()


def _runs_of(pairs: PairRuns, most: int = 1000) -> Iterator[tuple[str, list[str]]]:
    """Membership changes as one log entry per group (and per ``most`` members)."""
    for gid, members in pairs.runs():
        for start in range(0, len(members), most):
            yield gid, list(members[start : start + most])


def by_group(pairs: list[tuple[str, str]], most: int = 1000) -> list[tuple[str, list[str]]]:
    """Membership changes as one log entry per group (and per ``most`` members)."""
    grouped: dict[str, list[str]] = {}
    for gid, member in pairs:
        grouped.setdefault(gid, []).append(member)
    return [
        (gid, members[start : start + most])
        for gid, members in sorted(grouped.items())
        for start in range(0, len(members), most)
    ]
