"""The log of what a provider sent to a directory's SCIM endpoint: method, path, status, the
provider's User-Agent and the body with every password redacted (never the token)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from roster.ids import new_id
from roster.scim.service import Reply
from roster.store.db import iso, utcnow
from roster.store.schema import directories, scim_requests

MAX_BODY = 4096
KEEP = 500  # requests kept per directory


def redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: "[redacted]" if str(k).lower() == "password" else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _body(raw: bytes) -> str | None:
    if not raw.strip():
        return None
    try:
        text = json.dumps(redact(json.loads(raw)), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = "[not JSON]"  # it could hold anything: never stored as sent
    return text if len(text) <= MAX_BODY else text[:MAX_BODY] + "…"


def record(
    engine: Engine, directory_id: str, method: str, path: str, reply: Reply, raw: bytes, agent: str | None
) -> None:
    with engine.begin() as conn:
        exists = conn.execute(sa.select(directories.c.id).where(directories.c.id == directory_id)).first()
        if exists is None:
            return  # an unknown directory: nothing to log it under
        conn.execute(
            sa.insert(scim_requests).values(
                id=new_id("scim_request"),
                directory_id=directory_id,
                method=method,
                path=path[:2000],
                status=reply.status,
                user_agent=(agent or "")[:300] or None,
                body=_body(raw),
                run_id=reply.run_id,
                created_at=utcnow(),
            )
        )
        _trim(conn, directory_id)


def _trim(conn: Connection, directory_id: str) -> None:
    r = scim_requests
    oldest_kept = conn.execute(
        sa.select(r.c.id)
        .where(r.c.directory_id == directory_id)
        .order_by(r.c.id.desc())
        .offset(KEEP)
        .limit(1)
    ).scalar()
    if oldest_kept is not None:
        conn.execute(sa.delete(r).where(r.c.directory_id == directory_id, r.c.id <= oldest_kept))


def recent(conn: Connection, directory_id: str, limit: int = 100) -> list[dict[str, Any]]:
    r = scim_requests
    rows = conn.execute(
        sa.select(r).where(r.c.directory_id == directory_id).order_by(r.c.id.desc()).limit(limit)
    ).mappings()
    return [
        {
            "id": row["id"],
            "method": row["method"],
            "path": row["path"],
            "status": row["status"],
            "user_agent": row["user_agent"],
            "body": row["body"],
            "run_id": row["run_id"],
            "created_at": iso(row["created_at"]),
        }
        for row in rows
    ]
