"""Near-real-time mode: directories that opt in get an incremental run every N seconds.

``NearRealTime.tick()`` finds the directories that are due and hands them to a
``submit`` callable (the in-process runner, which refuses a directory that is
already running); ``run_forever`` calls it once a second until stopped. Issue-level
scheduling (daily full runs, access checks, many workers) builds on the same tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from roster.runtime import Runtime
from roster.store import repo

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 10


class NearRealTime:
    def __init__(
        self,
        engine: Engine,
        submit: Callable[[str], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.submit, self.clock = engine, submit, clock
        self._last: dict[str, float] = {}
        self._stop = threading.Event()

    def due(self) -> list[str]:
        now = self.clock()

        with self.engine.connect() as conn:
            rows = repo.list_directories(conn)
            waiting = repo.held_directories(conn)
        due = []
        for row in rows:
            interval = row["config"].get("near_real_time_seconds")
            if not interval or row["state"] in ("linking", "deleting", "invalid_credentials"):
                continue  # the first run is an explicit one; a refused bind waits for a fix
            if not row["cursor"] or row["id"] in waiting:
                continue  # no incremental runs possible, or a held run waits for an admin
            last = self._last.get(row["id"])
            if last is None or now - last >= interval:
                due.append(row["id"])
        return due

    def tick(self) -> list[str]:
        started = []
        for directory_id in self.due():
            self._last[directory_id] = self.clock()
            try:
                self.submit(directory_id)
                started.append(directory_id)
            except Exception as exc:  # busy, or failing: try again at the next interval
                log.info("near-real-time run of %s not started: %s", directory_id, exc)
        return started

    def run_forever(self, period: float = 1.0) -> None:
        while not self._stop.wait(period):
            try:
                self.tick()
            except Exception:
                log.exception("near-real-time scheduler tick failed")

    def stop(self) -> None:
        self._stop.set()


class AccessChecks:
    """The periodic access check of every linked directory, mail delivery and clean-up.

    A check is claimed in the database (``directories.last_check_at`` moved forward by a
    conditional UPDATE), so however many workers run this, each directory is checked once
    per interval, and a lost connection is alerted once.
    """

    def __init__(self, rt: Runtime, clock: Callable[[], datetime] | None = None) -> None:
        from roster.store.db import utcnow

        self.rt, self.clock = rt, clock or utcnow
        self.started = self.clock()
        self._pruned: datetime | None = None

    def _claim(self, directory_id: str, now: datetime) -> bool:
        from roster.store.schema import directories

        d = directories
        due = now - timedelta(seconds=self.rt.settings.access_check_seconds)
        with self.rt.engine.begin() as conn:
            won = conn.execute(
                sa.update(d)
                .where(d.c.id == directory_id, sa.or_(d.c.last_check_at.is_(None), d.c.last_check_at <= due))
                .values(last_check_at=now)
            )
        return won.rowcount == 1

    def tick(self) -> list[str]:
        from roster.notify.mail import deliver
        from roster.sources import pulled_types
        from roster.sync.access_check import check_access

        settings, now = self.rt.settings, self.clock()
        checked = []
        if now - self.started >= timedelta(seconds=settings.access_check_delay_seconds):
            with self.rt.engine.connect() as conn:
                rows = repo.list_directories(conn)
            pulled = set(pulled_types())
            for row in rows:
                if row["state"] not in ("linked", "invalid_credentials") or row["type"] not in pulled:
                    continue  # nothing to check; a pushed directory (SCIM) is reached by its provider
                if not self._claim(row["id"], now):
                    continue
                try:
                    check_access(self.rt, row["id"], now=now)
                    checked.append(row["id"])
                except Exception:
                    log.exception("access check of %s failed", row["id"])
        deliver(self.rt.engine, settings)
        if self._pruned is None or now - self._pruned >= timedelta(hours=1):
            from roster.events.webhooks import prune_events

            self._pruned = now
            prune_events(self.rt)
            prune_sync_log(self.rt)
        return checked


def run_ticks(stop: threading.Event, ticks: list[Callable[[], object]], period: float = 1.0) -> None:
    while not stop.wait(period):
        for tick in ticks:
            try:
                tick()
            except Exception:
                log.exception("scheduler tick failed")


def prune_sync_log(rt: Runtime, now: datetime | None = None) -> int:
    """Delete sync-log entries older than ``sync_log_retention_days`` (runs themselves stay)."""
    from roster.store.db import utcnow
    from roster.store.schema import sync_log

    cutoff = (now or utcnow()) - timedelta(days=rt.settings.sync_log_retention_days)
    with rt.engine.begin() as conn:
        return int(conn.execute(sa.delete(sync_log).where(sync_log.c.created_at < cutoff)).rowcount or 0)
