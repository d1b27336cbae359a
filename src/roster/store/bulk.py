"""Bulk INSERTs through the driver's own ``executemany``.

SQLAlchemy's per-row parameter processing costs more than the database's own work for
the hundreds of thousands of rows a first sync writes (the profile in docs/benchmarks.md).
Only for tables whose values are text, numbers, booleans and UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.store.db import as_utc


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = as_utc(value)
        assert utc is not None
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's own SQLite storage format (UTC)
    if isinstance(value, bool):
        return int(value)
    return value


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0].keys())
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
        params = [tuple(_sqlite_value(row[c]) for c in columns) for row in rows]
    else:
        marks = ", ".join("%s" for _ in columns)
        params = [tuple(row[c] for c in columns) for row in rows]
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    conn.exec_driver_sql(sql, params)
