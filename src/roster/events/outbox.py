"""The events outbox: rows written in the sync's own transaction, in commit order.

A consumer of ``GET /events`` keeps the last id it saw and asks for newer ones,
so ids must grow in the order transactions commit, not in the order they began.
Writers therefore take one lock before allocating event ids (PostgreSQL: a
transaction-scoped advisory lock; SQLite: its single writer lock is already held)
and allocate above the newest stored id; the lock is released at commit.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.ids import new_ids
from roster.store.bulk import insert_many
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
        self._pending: list[tuple[str, str]] = []
        self._last: str | None = None
        self._locked = False
        self.written = 0

    def add(self, kind: str, data: str) -> None:
        self._pending.append((kind, data))
        if len(self._pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        if not self._locked:
            self._last = lock_event_order(self.conn)
            self._locked = True
        ids = new_ids("event", len(self._pending), after=self._last)
        self._last = ids[-1]
        rows = [
            {
                "id": eid,
                "organization_id": self.organization_id,
                "directory_id": self.directory_id,
                "event": kind,
                "data": data,
                "created_at": self.now,
            }
            for eid, (kind, data) in zip(ids, self._pending, strict=True)
        ]
        insert_many(self.conn, events, rows)
        self.written += len(rows)
        self._pending = []
