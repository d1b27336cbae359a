"""Reading the events outbox: rows become events, and cursors may land inside a run of memberships.

A row is one event, or a *run*: the membership events of one group, of one kind, written by one
transaction (``members``: the users' stored object refs, one per line). A first sync writes a
million memberships as about ten thousand rows, and every reader still sees one event per
membership: the run's events get the ids ``<row id>.<index:04d>``, which sort after the row's id
and before the next row's, so event ids still grow in commit order and a consumer's cursor
(``after=``, a webhook endpoint's position) may stand between two memberships of one group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.events.objects import resolve_objects
from roster.store.schema import events

SEP = "."
RUN_MAX = 1000  # membership events per row at most


def row_id(event_id: str) -> str:
    """The row an event id lives in."""
    return event_id.split(SEP, 1)[0]


def event_ids(row: Any) -> list[str]:
    if row["members"] is None:
        return [row["id"]]
    return [f"{row['id']}{SEP}{i:04d}" for i in range(int(row["member_count"]))]


@dataclass(frozen=True)
class Slice:
    events: list[dict[str, Any]]
    more: bool  # further events exist past the last one returned


def read(
    conn: Connection,
    where: Sequence[sa.ColumnElement[bool]],
    *,
    limit: int,
    after: str | None = None,
    before: str | None = None,
    descending: bool = False,
) -> Slice:
    """Up to ``limit`` events matching ``where``, strictly between the cursors, in id order
    (newest first when ``descending``)."""
    col = events.c.id
    q = sa.select(events).where(*where)
    if after is not None:
        q = q.where(col >= row_id(after))
    if before is not None:
        q = q.where(col <= row_id(before))
    # every row holds at least one event; the rows of the cursors may hold none past them
    q = q.order_by(col.desc() if descending else col.asc()).limit(limit + 3)
    found = expand(conn, conn.execute(q).mappings())
    if descending:  # rows came newest first, each run expanded oldest first
        found.sort(key=lambda e: str(e["id"]), reverse=True)
    chosen = [e for e in found if (after is None or e["id"] > after) and (before is None or e["id"] < before)]
    return Slice(chosen[:limit], len(chosen) > limit)


def count(conn: Connection, where: Sequence[sa.ColumnElement[bool]], after: str | None) -> int:
    """How many events matching ``where`` come after the cursor."""
    col = events.c.id
    size = sa.func.coalesce(events.c.member_count, 1)
    q = sa.select(sa.func.coalesce(sa.func.sum(size), 0)).where(*where)
    if after is None:
        return int(conn.execute(q).scalar() or 0)
    total = int(conn.execute(q.where(col > row_id(after))).scalar() or 0)
    here = conn.execute(
        sa.select(events.c.id, events.c.member_count).where(col == row_id(after), *where)
    ).first()
    if here is not None and here.member_count is not None and SEP in after:
        total += max(0, int(here.member_count) - int(after.split(SEP, 1)[1]) - 1)
    return total


def find(conn: Connection, where: Sequence[sa.ColumnElement[bool]], event_id: str) -> dict[str, Any] | None:
    """One event by id (None: no such event)."""
    rows = conn.execute(sa.select(events).where(events.c.id == row_id(event_id), *where)).mappings()
    return next((e for e in expand(conn, rows) if e["id"] == event_id), None)


def newest_id(conn: Connection, where: Sequence[sa.ColumnElement[bool]]) -> str | None:
    """The id of the newest event (inside a run: its last membership), None when there is none."""
    found = read(conn, where, limit=1, descending=True).events
    return str(found[0]["id"]) if found else None


def previous_id(conn: Connection, where: Sequence[sa.ColumnElement[bool]], event_id: str) -> str | None:
    """The id of the event just before ``event_id`` (None: it is the first)."""
    found = read(conn, where, limit=1, before=event_id, descending=True).events
    return found[0]["id"] if found else None


def expand(conn: Connection, rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Event rows as events, ``data`` complete: a run becomes one event per member, in order."""
    out: list[dict[str, Any]] = []
    for row in resolve_objects(conn, rows):
        datas = row.pop("datas", None)
        if datas is None:
            out.append(row)
            continue
        out.extend({**row, "id": eid, "data": data} for eid, data in zip(event_ids(row), datas, strict=True))
    return out
