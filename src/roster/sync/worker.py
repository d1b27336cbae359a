"""Workers: take sync jobs from the database and run them, one directory at a time each.

``roster serve`` runs one in-process worker (the embedded default, SQLite);
``roster worker`` runs workers only, any number of them on any number of hosts
sharing one PostgreSQL database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from roster.directories import sync_directory
from roster.ids import ulid
from roster.runtime import Runtime
from roster.store import jobs

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, rt: Runtime, name: str | None = None) -> None:
        self.rt = rt
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{ulid()[-6:]}"
        self.lease = timedelta(seconds=rt.settings.job_lease_seconds)
        self._stop = threading.Event()

    def run_once(self) -> dict[str, Any] | None:
        """Reap dead workers' jobs, take one job and run it; returns the job, or None when idle."""
        with self.rt.engine.begin() as conn:
            jobs.reap(conn)
            job = jobs.claim(conn, self.name, self.lease, self.rt.settings.jobs_per_organization)
            if job is not None and jobs.already_covered(conn, job):
                jobs.finish(conn, job, self.name, "done", None, "a full run since its due time covered it")
                return job
        if job is None:
            return None
        beat = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(job, beat), daemon=True)
        heart.start()
        try:
            args = job["args"]
            result = sync_directory(
                self.rt,
                job["directory_id"],
                trigger=args.get("trigger", "job"),
                dry_run=bool(args.get("dry_run")),
                force=bool(args.get("force")),
                full=bool(args.get("full")),
                approved_digest=args.get("approved_digest"),
                lease_owner=self.name,  # applies only while this worker still holds the directory
            )
            status, run_id, error = (
                ("done" if result.status != "failed" else "failed"),
                result.run_id,
                result.error,
            )
        except Exception as exc:
            log.exception("job %s failed", job["id"])
            status, run_id, error = "failed", None, repr(exc)
        finally:
            beat.set()
            heart.join(5)
        with self.rt.engine.begin() as conn:
            jobs.finish(conn, job, self.name, status, run_id, error)
        return job

    def _heartbeat(self, job: dict[str, Any], stop: threading.Event) -> None:
        interval = max(0.5, self.lease.total_seconds() / 3)
        while not stop.wait(interval):
            with self.rt.engine.begin() as conn:
                if not jobs.renew(conn, job, self.name, self.lease):
                    log.error("worker %s lost the lease of job %s", self.name, job["id"])
                    return

    def run_forever(self, idle: float = 0.2) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once() is None:
                    self._stop.wait(idle)
            except Exception:
                log.exception("worker round failed")
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
