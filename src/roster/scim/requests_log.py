"""The log of what a provider sent to a directory's SCIM endpoint: method, path, status, the
provider's User-Agent and the body with every password redacted (never the token)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from roster.ids import new_id
from roster.scim.service import Reply
from roster.store.db import iso, utcnow
from roster.store.schema import directories
from roster.store.schema_access import scim_requests

log = logging.getLogger(__name__)
MAX_BODY = 4096
KEEP = 500  # requests kept per directory


def _secret(name: Any) -> bool:
    """``password``, ``urn:...:User:password``, a PATCH path to it (``password``, ``PASSWORD``)."""
    return isinstance(name, str) and name.rpartition(":")[2].strip().lower() == "password"


def redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        if _secret(value.get("path") or value.get("Path")):  # {"op": "replace", "path": "password", ...}
            return {k: "[redacted]" if str(k).lower() == "value" else v for k, v in value.items()}
        return {k: "[redacted]" if _secret(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _clean(text: str) -> str:
    return text.replace("\x00", "")  # PostgreSQL text holds no NUL


def _body(raw: bytes) -> str | None:
    if not raw.strip():
        return None
    try:
        text = json.dumps(redact(json.loads(raw)), separators=(",", ":"), ensure_ascii=False)
    except Exception:  # not JSON, or too deep to read: it could hold anything, never stored as sent
        text = "[not JSON]"
    text = _clean(text)
    return text if len(text) <= MAX_BODY else text[:MAX_BODY] + "…"


def entry(
    directory_id: str, method: str, path: str, reply: Reply, raw: bytes, agent: str | None
) -> dict[str, Any]:
    return {
        "id": new_id("scim_request"),
        "directory_id": directory_id,
        "method": method,
        "path": _clean(path[:2000]),
        "status": reply.status,
        "user_agent": _clean(agent or "")[:300] or None,
        "body": _body(raw),
        "run_id": reply.run_id,
        "created_at": utcnow(),
    }


class Recorder:
    """Writes log entries in batches from one thread (a request does not wait for its entry's
    commit); ``flush()`` writes what is queued, as a reader of the log does first."""

    def __init__(self, engine: Engine, period: float = 0.5) -> None:
        self.engine, self.period = engine, period
        self._queue: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._queue.append(item)

    def flush(self) -> None:
        with self._write:
            with self._lock:
                items, self._queue = self._queue, []
            if not items:
                return
            try:
                write(self.engine, items)
            except Exception:  # one bad entry must not lose the others
                log.exception("writing %d SCIM log entries failed; writing them one by one", len(items))
                for item in items:
                    try:
                        write(self.engine, [item])
                    except Exception:
                        log.warning("a SCIM log entry of %s could not be written", item["directory_id"])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="roster-scim-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.flush()
            except Exception:
                log.exception("writing the SCIM request log failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.flush()


def write(engine: Engine, items: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        wanted = {i["directory_id"] for i in items}
        known = set(conn.execute(sa.select(directories.c.id).where(directories.c.id.in_(wanted))).scalars())
        kept = [i for i in items if i["directory_id"] in known]  # an unknown directory: nothing to log under
        if kept:
            conn.execute(sa.insert(scim_requests), kept)
        for directory_id in known:
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
