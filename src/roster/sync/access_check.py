"""The access check: a cheap bind and base search per directory; one alert per outage."""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from roster.accounts.lifecycle import access_lost
from roster.runtime import Runtime
from roster.sources import connector_for
from roster.store import repo
from roster.store.db import utcnow
from roster.store.schema import directories

log = logging.getLogger(__name__)


def check_access(rt: Runtime, directory_id: str, now: datetime | None = None) -> bool:
    with rt.engine.connect() as conn:
        directory = repo.get_directory(conn, directory_id)
    report = connector_for(directory, rt.box, rt.settings, rt.engine).test()
    record_access(rt, directory_id, report.ok, report.detail, now)
    return report.ok


OUTAGES = ("unreachable", "timeout", "tls", "invalid_credentials")  # a run failing so is an outage


def record_access(rt: Runtime, directory_id: str, ok: bool, detail: str, now: datetime | None = None) -> None:
    """Record what a check (or a run that could not reach the directory) found; the first failure
    of an outage e-mails the organization's admins, once, until the directory answers again."""
    now = now or utcnow()
    with rt.engine.begin() as conn:
        directory = repo.get_directory(conn, directory_id)
        values: dict[str, object] = {
            "last_check_at": now,
            "last_check_ok": ok,
            "last_check_error": None if ok else detail,
        }
        if not ok and directory["lost_alerted_at"] is None:
            access_lost(conn, rt.settings, directory, detail)
            values["lost_alerted_at"] = now
            log.warning("directory %s lost: %s", directory_id, detail)
        elif ok and directory["lost_alerted_at"] is not None:
            values["lost_alerted_at"] = None  # recovered; the next outage alerts again
            log.info("directory %s reachable again", directory_id)
        conn.execute(sa.update(directories).where(directories.c.id == directory_id).values(**values))
