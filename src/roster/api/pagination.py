"""Cursor pagination as the WorkOS API does it: ids are cursors, ``before``/``after``, ``order``.

``order=desc`` (default) and ``asc``: ``after`` continues in the list's order and
``before`` goes back. ``order=normal`` lists newest first with ``before``
fetching older records and ``after`` newer ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.api.errors import ApiError

Order = Literal["asc", "desc", "normal"]
Fetch = Callable[[str | None, bool, int], tuple[list[dict[str, Any]], bool]]
"""(cursor, ascending, limit) -> (up to ``limit`` rows strictly past the cursor, whether more follow)"""


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    before: str | None
    after: str | None

    def metadata(self) -> dict[str, str | None]:
        return {"before": self.before, "after": self.after}


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise ApiError(
            422,
            "invalid_request_parameters",
            f"limit: {limit} is out of range; use 1 to 100",
            [{"field": "limit", "code": "out_of_range"}],
        )
    return limit


# a Roster id (prefix, "_", a 26-character ULID), or an event of a membership run ("<id>.<index>")
_CURSOR = re.compile(r"[a-z][a-z_]{0,40}_[0-9A-HJKMNP-TV-Z]{26}(\.[0-9]{1,6})?")


def check_cursor(name: str, value: str | None) -> None:
    """A cursor is an id from the list; anything else is refused, not read as "no cursor"."""
    if value is not None and not _CURSOR.fullmatch(value):
        raise ApiError(
            400,
            "invalid_request_parameters",
            f"{name}: {value[:60]!r} is not a cursor; use an id from the list's list_metadata",
            [{"field": name, "code": "invalid_cursor"}],
        )


def paginate(
    conn: Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    *,
    limit: int,
    before: str | None,
    after: str | None,
    order: Order,
    fetch: Fetch | None = None,
) -> Page:
    """``fetch``: how to read a page of rows past a cursor (default: the table's rows by id)."""
    check_limit(limit)
    check_cursor("before", before)
    check_cursor("after", after)
    if before and after:
        raise ApiError(422, "invalid_request_parameters", "before, after: give one cursor, not both")
    descending = order in ("desc", "normal")
    # "forward" runs in the list's own order; which cursor means forward depends on `order`.
    forward_cursor, backward_cursor = (before, after) if order == "normal" else (after, before)
    col = table.c.id
    going_back = backward_cursor is not None
    cursor = backward_cursor if going_back else forward_cursor
    ascending_query = descending == going_back
    if fetch is not None:
        rows, more = fetch(cursor, ascending_query, limit)
    else:
        q = sa.select(table).where(*where)
        if cursor is not None:
            q = q.where(col > cursor if ascending_query else col < cursor)
        q = q.order_by(col.asc() if ascending_query else col.desc()).limit(limit + 1)
        rows = [dict(r) for r in conn.execute(q).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
    if going_back:
        rows.reverse()
    next_forward = rows[-1]["id"] if rows and (more if not going_back else True) else None
    next_backward = rows[0]["id"] if rows and (more if going_back else cursor is not None) else None
    if order == "normal":
        return Page(rows, before=next_forward, after=next_backward)
    return Page(rows, before=next_backward, after=next_forward)
