"""Approving or rejecting a run the deletion guard held.

Approving queues a new run allowed to apply exactly the held change set: if the
directory still reads the same, that run applies it; if anything changed, the new
plan is checked by the guard again (and may be held again). Rejecting ends it.
Held runs never apply on their own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.store import jobs, repo
from roster.store.db import utcnow
from roster.store.schema import sync_runs


class NotPending(ValueError):
    pass


def _pending(conn: Connection, run_id: str) -> dict[str, Any]:
    run = repo.get_run(conn, run_id)
    if run["status"] != "pending_approval" or run["decision"] is not None:
        raise NotPending(
            f"run: {run_id} is not waiting for approval (it is {run['decision'] or run['status']})"
        )
    return run


def approve(conn: Connection, run_id: str) -> str:
    """Queue the approved run; returns the job id."""
    run = _pending(conn, run_id)
    conn.execute(
        sa.update(sync_runs).where(sync_runs.c.id == run_id).values(decision="approved", decided_at=utcnow())
    )
    return jobs.enqueue_sync(
        conn,
        run["directory_id"],
        trigger="approval",
        approved_digest=run["plan_digest"],
        dry_run=False,
        approved_run=run_id,
        full=run["kind"] == "full",
    )


def reject(conn: Connection, run_id: str) -> None:
    _pending(conn, run_id)
    conn.execute(
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(decision="rejected", decided_at=utcnow(), status="rejected")
    )
