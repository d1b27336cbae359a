"""Runs syncs requested over HTTP in background threads, one run per directory at a time.

This in-process runner is the embedded default; jobs leased through the
database, shared by many workers, replace it when workers scale out.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from roster.sync.pipeline import RunResult

log = logging.getLogger(__name__)


class SyncBusy(RuntimeError):
    pass


class SyncRunner:
    def __init__(self, rt: Runtime, workers: int = 2) -> None:
        self.rt = rt
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roster-sync")
        self._lock = threading.Lock()
        self._running: dict[str, Future[RunResult]] = {}

    def submit(
        self,
        directory_id: str,
        *,
        trigger: str = "api",
        dry_run: bool = False,
        force: bool = False,
        full: bool = False,
    ) -> Future[RunResult]:
        with self.rt.engine.connect() as conn:
            if repo.get_directory(conn, directory_id)["state"] == "inactive":
                raise SyncBusy(f"directory {directory_id} is disabled; enable it before syncing")
        with self._lock:
            if directory_id in self._running:
                raise SyncBusy(f"a sync of directory {directory_id} is already running")
            future = self._pool.submit(
                sync_directory,
                self.rt,
                directory_id,
                trigger=trigger,
                dry_run=dry_run,
                force=force,
                full=full,
            )
            self._running[directory_id] = future
        future.add_done_callback(lambda _f: self._done(directory_id))
        return future

    def _done(self, directory_id: str) -> None:
        with self._lock:
            self._running.pop(directory_id, None)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
