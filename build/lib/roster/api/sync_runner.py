"""Sync requests from the API and the scheduler become jobs in the database.

Any worker (the one inside ``roster serve``, or ``roster worker`` processes) runs them;
triggers for a directory that already has a queued run coalesce into that run.
"""

from __future__ import annotations

import time
from typing import Any

from roster.runtime import Runtime
from roster.store import jobs, repo


class SyncBusy(RuntimeError):
    """The directory cannot be synced now (it is disabled)."""


class SyncRunner:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def submit(
        self,
        directory_id: str,
        *,
        trigger: str = "api",
        dry_run: bool = False,
        force: bool = False,
        full: bool = False,
    ) -> str:
        with self.rt.engine.begin() as conn:
            if repo.get_directory(conn, directory_id)["state"] == "inactive":
                raise SyncBusy(f"directory {directory_id} is disabled; enable it before syncing")
            return jobs.enqueue_sync(
                conn, directory_id, trigger=trigger, dry_run=dry_run, force=force, full=full
            )

    def wait(self, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            with self.rt.engine.connect() as conn:
                job = jobs.get(conn, job_id)
            if job is None or job["status"] in ("done", "failed"):
                return job or {}
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout:g} s")
            time.sleep(0.05)

    def shutdown(self) -> None:
        pass
