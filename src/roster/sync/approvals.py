"""Approving or rejecting a run the deletion guard held.

Approving queues a new run allowed to apply exactly the held change set: if the
directory still reads the same, that run applies it; if anything changed, the new
plan is checked by the guard again (and may be held again). Rejecting ends it.
Held runs never apply on their own. Once decided, a held run says so (``approved`` or
``rejected``); the run its approval queued records what was applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.domain.changes import ChangeSet
from roster.store import jobs, repo
from roster.store.db import utcnow
from roster.store.rows import load_rows
from roster.store.schema import directory_users, sync_runs


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
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(decision="approved", decided_at=utcnow(), status="approved")
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


def hold_for_approval(
    conn: Connection, directory: Mapping[str, Any], run_id: str, changes: ChangeSet, reason: str
) -> None:
    """Keep the run's exact plan for an admin to approve or reject, and tell the alert recipients once."""
    from roster.accounts.lifecycle import recipients
    from roster.notify.mail import queue

    digest = changes.digest()
    already = conn.execute(
        sa.select(sync_runs.c.id).where(
            sync_runs.c.directory_id == directory["id"], repo.HELD, sync_runs.c.id != run_id
        )
    ).first()
    conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run_id).values(plan_digest=digest))
    if already is not None:
        return  # an earlier held run already asked; one e-mail per outstanding approval
    org = directory["organization_id"]
    queue(
        conn,
        org,
        [r["email"] for r in recipients(conn, org)],
        f"Approval needed: a sync of {directory['name']} would deactivate {changes.deactivations} users",
        f"{reason}\n\nThe run {run_id} is held; nothing was applied. "
        f"Review its log (roster runs show {run_id}) and approve (roster runs approve {run_id}) "
        f"or reject it.\nFirst users it would deactivate:\n{_first_leavers(conn, changes)}\n",
        "approval_needed",
    )


def _first_leavers(conn: Connection, changes: ChangeSet, most: int = 20) -> str:
    """The first users the change set deactivates, by name and e-mail."""
    ids = [u.roster_id for u in changes.users_removed if u.active]
    ids += [u.previous.roster_id for u in changes.users_updated if u.deactivates]
    rows = load_rows(conn, directory_users, ids[:most])
    lines = [
        f"- {rows[i]['name'] or '(no name)'} <{rows[i]['email'] or 'no e-mail'}>"
        for i in ids[:most]
        if i in rows
    ]
    if len(ids) > most:
        lines.append(f"- and {len(ids) - most} more")
    return "\n".join(lines)
