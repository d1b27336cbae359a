"""Bulk INSERTs: ``COPY ... FROM STDIN`` on PostgreSQL, the driver's own ``executemany`` on SQLite.

SQLAlchemy's per-row parameter processing costs more than the database's own work for
the hundreds of thousands of rows a first sync writes (the profile in docs/benchmarks.md).
Only for tables whose values are text (JSON columns included, as text), numbers, booleans
and UTC datetimes. Both run inside the caller's transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.store.db import as_utc

CHUNK = 10_000  # rows per executemany (the rows of a chunk are all that is held)


def db_value(conn: Connection, value: Any) -> Any:
    """``value`` as the driver stores it (SQLite: SQLAlchemy's own text format for UTC times)."""
    if conn.dialect.name != "sqlite":
        return value
    if isinstance(value, datetime):
        utc = as_utc(value)
        assert utc is not None
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def insert_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert tuples whose values are already driver values (see ``db_value``)."""
    if conn.dialect.name == "postgresql":
        _copy(conn, table, columns, rows)
        return
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    marks = ", ".join(mark for _ in columns)
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    it = iter(rows)
    while chunk := list(itertools.islice(it, CHUNK)):  # bounded memory, whatever the row count
        conn.exec_driver_sql(statement, chunk)


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0].keys())
    if conn.dialect.name == "sqlite":
        # Convert column by column: most columns need nothing, and a run's rows share one timestamp.
        converted = []
        for c in columns:
            values = [row[c] for row in rows]
            sample = next((v for v in values if v is not None), None)
            if isinstance(sample, datetime | bool):
                memo: dict[Any, Any] = {}
                values = [
                    v if v is None else (memo[v] if v in memo else memo.setdefault(v, db_value(conn, v)))
                    for v in values
                ]
            converted.append(values)
        params: Iterable[tuple[Any, ...]] = zip(*converted, strict=True)
    else:
        params = (tuple(row[c] for c in columns) for row in rows)
    insert_rows(conn, table, columns, params)


def _copy(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """psycopg 3's ``COPY``: one streamed statement instead of a round trip per batch of rows."""
    import psycopg

    raw = conn.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
