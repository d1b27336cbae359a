"""One pull run: read the directory through its connector, then ingest what was read.

A run that fails anywhere before the final commit changes nothing but its own run record
(recorded as failed, with the reason). Everything that writes is ``sync.ingest``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from roster.connectors.base import Connector, ConnectorError, FailureReason, Progress
from roster.domain.policy import DeletionGuard
from roster.domain.reconcile import StaleCache
from roster.domain.records import Snapshot
from roster.store import repo
from roster.store.db import utcnow
from roster.store.rows import load_source_hashes
from roster.store.schema import directories
from roster.sync.ingest import Batch, Outcome, Policy, ingest

log = logging.getLogger(__name__)

RunResult = Outcome  # what a run returns: the ingest's outcome, or the failure


class DirectoryDisabled(RuntimeError):
    pass


@dataclass(frozen=True)
class Phase:
    """Progress reporting: ``phase(name)`` at each step, ``read(n)`` while reading."""

    phase: Callable[[str], None] = lambda _name: None
    read: Progress = lambda _n: None


@dataclass(frozen=True)
class _Start:
    run_id: str
    kind: str
    cursor: str | None  # the cursor an incremental read continues from (None: a full read)


def run_sync(
    engine: Engine,
    directory_id: str,
    connector: Connector,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    force: bool = False,
    full: bool = False,
    guard: DeletionGuard | None = None,
    progress: Phase | None = None,
    full_every: timedelta | None = None,
    approved_digest: str | None = None,
    lease_owner: str | None = None,
) -> RunResult:
    """Sync one directory: incrementally when it has a cursor and the connector can, else in full.

    ``full_every``: a full run at least this often, whatever the cursor says (time-dependent
    state such as lockouts, and changes a detector cannot see, are caught there).
    """
    progress = progress or Phase()
    start = _start(engine, directory_id, connector, trigger, dry_run, full, full_every)
    try:
        progress.phase("reading")
        batch = _read(engine, directory_id, connector, start.cursor, progress)
    except ConnectorError as exc:
        return _fail(engine, directory_id, start, str(exc), str(exc.reason))
    except Exception as exc:  # a bug must not leave a run "running" forever
        log.exception("sync run %s crashed while reading", start.run_id)
        return _fail(engine, directory_id, start, f"internal error while reading: {exc!r}", "internal")
    fell_back = {"fell_back_to_full": 1} if start.cursor is not None and isinstance(batch, Snapshot) else {}
    policy = Policy(
        guard=guard or DeletionGuard(),
        dry_run=dry_run,
        force=force,
        approved_digest=approved_digest,
        lease_owner=lease_owner,
        continues_from=start.cursor,
    )
    try:
        progress.phase("applying")
        with engine.begin() as conn:
            return ingest(conn, directory_id, batch, policy, run_id=start.run_id, extra_counts=fell_back)
    except StaleCache as exc:  # another writer changed the cache while this run was reading
        return _fail(engine, directory_id, start, f"{exc} (nothing was applied)", "cache_changed")
    except Exception as exc:
        log.exception("sync run %s crashed while applying", start.run_id)
        message = f"internal error while applying (nothing was applied): {exc!r}"
        return _fail(engine, directory_id, start, message, "internal")


def _start(
    engine: Engine,
    directory_id: str,
    connector: Connector,
    trigger: str,
    dry_run: bool,
    full: bool,
    full_every: timedelta | None,
) -> _Start:
    """Record the run before reading, and decide between an incremental and a full read."""
    with engine.begin() as conn:
        directory = repo.get_directory(conn, directory_id)
        if directory["state"] == "inactive":
            raise DirectoryDisabled(f"directory {directory_id} is disabled; enable it before syncing")
        cursor: str | None = directory["cursor"]
        incremental = bool(cursor) and not full and hasattr(connector, "changes")
        if incremental and full_every is not None:
            last_full = repo.last_full_run(conn, directory_id)
            incremental = last_full is not None and utcnow() - last_full < full_every
        kind = "dry_run" if dry_run else ("incremental" if incremental else "full")
        run = repo.start_run(conn, directory, trigger, kind)
    return _Start(run["id"], kind, cursor if incremental else None)


def _read(
    engine: Engine, directory_id: str, connector: Connector, cursor: str | None, progress: Phase
) -> Batch:
    """A delta from ``cursor`` when the connector can continue from it, else a whole snapshot.
    The connector gets frozen values of what the cache holds, never the store itself."""
    if cursor is not None:
        delta = connector.changes(cursor, progress.read)  # type: ignore[attr-defined]
        if delta is not None:
            return delta  # type: ignore[no-any-return]
    with engine.connect() as conn:  # users whose entry is as last read need no decoding
        previous = load_source_hashes(conn, directory_id)
    return connector.snapshot(progress.read, previous)


def _fail(engine: Engine, directory_id: str, start: _Start, message: str, reason: str) -> RunResult:
    with engine.begin() as conn:
        repo.finish_run(conn, start.run_id, "failed", {}, message, reason)
        if reason == FailureReason.INVALID_CREDENTIALS:
            conn.execute(
                sa.update(directories)
                .where(directories.c.id == directory_id)
                .values(state="invalid_credentials", updated_at=utcnow())
            )
    return RunResult(start.run_id, "failed", {}, message, reason, kind=start.kind)
