"""Sign-in throttling without a check-then-act race.

Every attempt takes its slot before the password is checked: one atomic upsert per key
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, on SQLite and PostgreSQL alike) counts
it and returns the new count, so 40 simultaneous guesses at one account get 5 checks, not 40.
An attempt over a limit is refused unchecked (and its slot given back); a successful one gives
its slots back and clears its account's count. Counts live for ``WINDOW`` from the first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from roster.store.db import as_utc, utcnow
from roster.store.schema import login_throttle

WINDOW = timedelta(minutes=15)
Keys = list[tuple[str, int]]  # (key, limit): account:<org>:<email>, operator:<email>, address:<ip>


def reserve(conn: Connection, keys: Keys) -> int | None:
    """Count this attempt on every key; None when it may go on, else the seconds to wait (and the
    attempt is not counted)."""
    now = utcnow()
    waits = []
    for key, limit in keys:
        count, start = _bump(conn, key, now)
        if count > limit:
            waits.append(int((start + WINDOW - now).total_seconds()) + 1)
    if waits:
        give_back(conn, keys)
        return max(1, max(waits))
    return None


def settle(conn: Connection, keys: Keys, failed: bool) -> None:
    """After the check: a failure keeps its count; a success gives its slots back and clears the
    account's count (a person who got in is not held back by their earlier typos)."""
    if failed:
        return
    give_back(conn, keys)
    accounts = [k for k, _ in keys if not k.startswith("address:")]
    if accounts:
        conn.execute(sa.delete(login_throttle).where(login_throttle.c.key.in_(accounts)))


def _bump(conn: Connection, key: str, now: datetime) -> tuple[int, datetime]:
    t = login_throttle
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stale = t.c.window_start <= now - WINDOW
    statement = (
        dialect.insert(t)
        .values(key=key, failures=1, window_start=now)
        .on_conflict_do_update(
            index_elements=[t.c.key],
            set_={
                "failures": sa.case((stale, 1), else_=t.c.failures + 1),
                "window_start": sa.case((stale, now), else_=t.c.window_start),
            },
        )
        .returning(t.c.failures, t.c.window_start)
    )
    row = conn.execute(statement).one()
    start = as_utc(row.window_start)
    assert start is not None
    return int(row.failures), start


def give_back(conn: Connection, keys: Keys) -> None:
    """Uncount an attempt that said nothing about the password (say, the directory was down)."""
    t = login_throttle
    conn.execute(
        sa.update(t)
        .where(t.c.key.in_([k for k, _ in keys]), t.c.failures > 0)
        .values(failures=t.c.failures - 1)
    )
