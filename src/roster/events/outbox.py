"""The events outbox: rows written in the sync's own transaction, in commit order.

A consumer of ``GET /events`` keeps the last id it saw and asks for newer ones,
so ids must grow in the order transactions commit, not in the order they began.
Writers therefore take one lock before allocating event ids (PostgreSQL: a
transaction-scoped advisory lock; SQLite: its single writer lock is already held)
and allocate above the newest stored id; the lock is released at commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.events.feed import RUN_MAX
from roster.events.objects import object_ref, store_objects
from roster.ids import new_ids
from roster.store.bulk import db_value, insert_rows
from roster.store.schema import events

_LOCK_KEY = 0x526F73746572  # "Roster"
CHUNK = 5000


def lock_event_order(conn: Connection) -> str | None:
    """Serialize event writers until commit; return the newest stored event id."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    newest: str | None = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
    return newest


class Outbox:
    """Buffers events and writes them in chunks, ids in order, inside the caller's transaction."""

    def __init__(self, conn: Connection, organization_id: str, directory_id: str, now: datetime) -> None:
        self.conn, self.organization_id, self.directory_id, self.now = (
            conn,
            organization_id,
            directory_id,
            now,
        )
        # (kind, data, user ref, group ref, the users of a run of memberships of that group)
        self._pending: list[tuple[str, str, str | None, str | None, list[str]]] = []
        self._objects: dict[str, str] = {}  # object versions to store at the next flush
        self._last: str | None = None
        self._locked = False
        self.written = 0

    def add(self, kind: str, data: str) -> None:
        self._pending.append((kind, data, None, None, []))
        if len(self._pending) >= CHUNK:
            self.flush()

    def add_membership(self, kind: str, user_ref: str, group_ref: str) -> None:
        """A membership event naming versions of its user and group (``ref``). Events of one group
        and kind that follow each other share one row (a run, see ``events.feed``)."""
        last = self._pending[-1] if self._pending else None
        if last is not None and last[0] == kind and last[3] == group_ref and 0 < len(last[4]) < RUN_MAX:
            last[4].append(user_ref)
            return
        self._pending.append((kind, "", user_ref, group_ref, [user_ref]))
        if len(self._pending) >= CHUNK:
            self.flush()

    def ref(self, text: str) -> str:
        """The ref of an object version, stored (or its last_used moved up) at the next flush. The
        caller keeps the ref, not the text: a first sync's 100,000 users are not held as JSON."""
        ref = object_ref(text)
        self._objects[ref] = text
        return ref

    def flush(self) -> None:
        if not self._pending:
            return
        if not self._locked:
            self._last = lock_event_order(self.conn)
            self._locked = True
        ids = new_ids("event", len(self._pending), after=self._last)
        self._last = ids[-1]
        store_objects(self.conn, self._objects, self.now)
        stamp = db_value(self.conn, self.now)
        org, directory = self.organization_id, self.directory_id
        columns = (
            "id",
            "organization_id",
            "directory_id",
            "event",
            "data",
            "created_at",
            "user_ref",
            "group_ref",
        )
        insert_rows(
            self.conn,
            events,
            (*columns, "members", "member_count"),
            [
                (eid, org, directory, kind, data, stamp, *_refs(user_ref, group_ref, run))
                for eid, (kind, data, user_ref, group_ref, run) in zip(ids, self._pending, strict=True)
            ],
        )
        self.written += sum(max(1, len(run)) for *_, run in self._pending)
        self._pending = []
        self._objects = {}


def _refs(user_ref: str | None, group_ref: str | None, run: list[str]) -> tuple[Any, ...]:
    """(user_ref, group_ref, members, member_count): one membership names its user, a run lists them."""
    if len(run) > 1:
        return None, group_ref, "\n".join(run), len(run)
    return user_ref, group_ref, None, None
