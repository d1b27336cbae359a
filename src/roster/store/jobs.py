"""Jobs in the database: queued sync runs, leased by workers, coalesced per directory.

- ``enqueue_sync`` adds a sync job unless one is already queued for the directory: two
  triggers for a directory that is running coalesce into one follow-up run.
- A worker takes a job by leasing its directory (``directories.lease_owner/lease_until``,
  a conditional UPDATE that only one worker can win, on SQLite and PostgreSQL alike),
  then the job. It renews both leases while it works.
- A worker that dies stops renewing; when the lease has passed, ``reap`` puts its job back
  in the queue (the sync itself is one transaction: nothing half-applied is left) and
  marks the abandoned run failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.ids import new_id
from roster.store.db import as_utc, utcnow
from roster.store.repo import NotFound
from roster.store.schema import directories, jobs, organizations, sync_runs

MAX_ATTEMPTS = 5
BACKGROUND = ("schedule", "near_real_time")  # triggers nobody is waiting for; the others go first


def enqueue_sync(conn: Connection, directory_id: str, **args: Any) -> str:
    if not args.get("dry_run") and not args.get("approved_digest"):
        queued = conn.execute(
            sa.select(jobs.c.id, jobs.c.args).where(
                jobs.c.kind == "sync", jobs.c.directory_id == directory_id, jobs.c.status == "queued"
            )
        )
        for job_id, job_args in queued:
            if job_args.get("dry_run") or job_args.get("approved_digest"):
                continue  # a dry run or an approval is a job of its own
            merged = {
                **job_args,
                "full": bool(job_args.get("full") or args.get("full")),
                "force": bool(job_args.get("force") or args.get("force")),
            }
            if job_args.get("trigger") in BACKGROUND and args.get("trigger") not in BACKGROUND:
                merged["trigger"] = args.get("trigger")  # somebody waits for it now: it goes first,
                merged.pop("due", None)  # and runs even if a run since the due time covered the schedule
            if merged != job_args:
                conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(args=merged))
            return str(job_id)
    job_id = new_id("job")
    conn.execute(
        sa.insert(jobs).values(
            id=job_id,
            kind="sync",
            directory_id=directory_id,
            args=args,
            status="queued",
            attempts=0,
            created_at=utcnow(),
        )
    )
    return job_id


def get(conn: Connection, job_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return dict(row) if row else None


def already_covered(conn: Connection, job: dict[str, Any]) -> bool:
    """A scheduled job whose due time a full run started since has covered (two schedulers can
    both see a directory due while its run is under way; the second job then has nothing to do)."""
    due = job["args"].get("due")
    if not due or not job["directory_id"]:
        return False
    started = conn.execute(
        sa.select(sa.func.max(sync_runs.c.started_at)).where(
            sync_runs.c.directory_id == job["directory_id"],
            sync_runs.c.kind == "full",
            sync_runs.c.status == "succeeded",
        )
    ).scalar()
    when = as_utc(started)
    return when is not None and when >= datetime.fromisoformat(due)


def running_directories(conn: Connection) -> set[str]:
    """Directories with a sync job running."""
    q = sa.select(jobs.c.directory_id).where(jobs.c.status == "running", jobs.c.kind == "sync")
    return {str(d) for d in conn.execute(q.distinct()).scalars() if d}


def claim(
    conn: Connection, owner: str, lease: timedelta, per_organization: int = 1000
) -> dict[str, Any] | None:
    """Take the oldest queued job whose directory no other worker holds and whose organization has
    fewer than ``per_organization`` jobs running; None if there is none. Jobs somebody waits for
    (a sync asked for by hand, the API, the console, an approval) go before scheduled ones."""
    now = utcnow()
    d = directories
    free = sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now, d.c.lease_owner == owner)
    running = (
        sa.select(d.c.organization_id)
        .join(jobs, jobs.c.directory_id == d.c.id)
        .where(jobs.c.status == "running", jobs.c.lease_until >= now)
        .group_by(d.c.organization_id)
        .having(sa.func.count() >= per_organization)
    )
    candidates = conn.execute(
        sa.select(jobs.c.id, jobs.c.directory_id, d.c.organization_id)
        .join(d, d.c.id == jobs.c.directory_id)
        .where(jobs.c.status == "queued", free, d.c.organization_id.not_in(running))
        .order_by(sa.func.coalesce(jobs.c.args["trigger"].as_string(), "").in_(BACKGROUND), jobs.c.id)
        .limit(20)
    ).all()
    for job_id, directory_id, org in candidates:
        if not _below_cap(conn, org, per_organization, now):
            continue
        held = conn.execute(
            sa.update(d)
            .where(
                d.c.id == directory_id,
                sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now, d.c.lease_owner == owner),
            )
            .values(lease_owner=owner, lease_until=now + lease)
        )
        if held.rowcount != 1:
            continue  # another worker syncs this directory now (or it was deleted)
        took = conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "queued")
            .values(
                status="running",
                owner=owner,
                lease_until=now + lease,
                started_at=now,
                attempts=jobs.c.attempts + 1,
            )
        )
        if took.rowcount == 1:
            return get(conn, job_id)
        release_directory(conn, directory_id, owner)
    return None


def _below_cap(conn: Connection, org: str, cap: int, now: datetime) -> bool:
    """Whether the organization runs fewer than ``cap`` jobs, counted under a lock on its row
    (claims for one organization take turns, so two workers cannot both take the last place)."""
    o = organizations
    conn.execute(sa.update(o).where(o.c.id == org).values(id=o.c.id))  # the lock (SQLite: the write lock)
    running = conn.execute(
        sa.select(sa.func.count())
        .select_from(jobs)
        .join(directories, directories.c.id == jobs.c.directory_id)
        .where(directories.c.organization_id == org, jobs.c.status == "running", jobs.c.lease_until >= now)
    ).scalar()
    return int(running or 0) < cap


def renew(conn: Connection, job: dict[str, Any], owner: str, lease: timedelta) -> bool:
    """Extend both leases; False when this worker has lost them (it must stop)."""
    until = utcnow() + lease
    ok = (
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job["id"], jobs.c.owner == owner, jobs.c.status == "running")
            .values(lease_until=until)
        ).rowcount
        == 1
    )
    conn.execute(
        sa.update(directories)
        .where(directories.c.id == job["directory_id"], directories.c.lease_owner == owner)
        .values(lease_until=until)
    )
    return ok


def finish(
    conn: Connection,
    job: dict[str, Any],
    owner: str,
    status: str,
    run_id: str | None,
    error: str | None = None,
) -> None:
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job["id"], jobs.c.owner == owner)
        .values(status=status, run_id=run_id, error=error, finished_at=utcnow(), lease_until=None)
    )
    release_directory(conn, job["directory_id"], owner)


def release_directory(conn: Connection, directory_id: str | None, owner: str) -> None:
    conn.execute(
        sa.update(directories)
        .where(directories.c.id == directory_id, directories.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def reap(conn: Connection) -> int:
    """Requeue jobs whose worker stopped renewing; mark their abandoned runs failed, and the runs
    of any other holder (``roster sync`` by hand) that stopped renewing its directory lease."""
    now = utcnow()
    dead = (
        conn.execute(sa.select(jobs).where(jobs.c.status == "running", jobs.c.lease_until < now))
        .mappings()
        .all()
    )
    for job in dead:
        status = "queued" if job["attempts"] < MAX_ATTEMPTS else "failed"
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job["id"], jobs.c.status == "running")
            .values(status=status, owner=None, lease_until=None, error="its worker stopped (lease expired)")
        )
        conn.execute(
            sa.update(sync_runs)
            .where(
                sync_runs.c.directory_id == job["directory_id"],
                sync_runs.c.status == "running",
                sync_runs.c.started_at <= now,
            )
            .values(
                status="failed",
                error="abandoned: its worker stopped before finishing; nothing was applied",
                error_reason="worker_lost",
                finished_at=now,
            )
        )
    return len(dead) + reap_orphaned_runs(conn, now)


def reap_orphaned_runs(conn: Connection, now: datetime) -> int:
    """Runs still ``running`` whose directory's holder stopped renewing its lease: their process
    died (a run applies in one transaction, so nothing of it was applied)."""
    d = directories
    unheld = sa.select(d.c.id).where(d.c.lease_owner.is_not(None), d.c.lease_until < now)
    done = conn.execute(
        sa.update(sync_runs)
        .where(
            sync_runs.c.status == "running",
            sync_runs.c.directory_id.in_(unheld),
        )
        .values(
            status="failed",
            error="abandoned: the process running it stopped before finishing; nothing was applied",
            error_reason="worker_lost",
            finished_at=now,
        )
    )
    return int(done.rowcount or 0)


def cancel_run(conn: Connection, run_id: str) -> dict[str, Any]:
    """Stop waiting for a running run: mark it failed and release its directory, so the next run
    can start at once. A holder that is still alive applies nothing (it no longer holds the
    lease) and stops at its next heartbeat."""
    run = conn.execute(sa.select(sync_runs).where(sync_runs.c.id == run_id)).mappings().first()
    if run is None:
        raise NotFound(f"sync run {run_id!r} not found")
    if run["status"] != "running":
        raise RunNotRunning(f"run {run_id} is {run['status']}, not running; there is nothing to cancel")
    now = utcnow()
    cancelled = "cancelled by an operator; nothing was applied"
    conn.execute(
        sa.update(sync_runs)
        .where(sync_runs.c.id == run_id, sync_runs.c.status == "running")
        .values(status="failed", error=cancelled, error_reason="cancelled", finished_at=now)
    )
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.directory_id == run["directory_id"], jobs.c.status == "running")
        .values(status="failed", owner=None, lease_until=None, error=cancelled, finished_at=now)
    )
    d = directories
    conn.execute(sa.update(d).where(d.c.id == run["directory_id"]).values(lease_owner=None, lease_until=None))
    return {**dict(run), "status": "failed", "error_reason": "cancelled"}


class RunNotRunning(ValueError):
    pass


class DirectoryBusy(RuntimeError):
    pass


def hold_directory(conn: Connection, directory_id: str, owner: str, lease: timedelta) -> None:
    """Take a directory's lease outside the job queue (``roster sync`` run by hand)."""
    now = utcnow()
    d = directories
    held = conn.execute(
        sa.update(d)
        .where(d.c.id == directory_id, sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now))
        .values(lease_owner=owner, lease_until=now + lease)
    )
    if held.rowcount != 1:
        who = conn.execute(sa.select(d.c.lease_owner).where(d.c.id == directory_id)).scalar()
        if who is None:
            raise NotFound(f"directory {directory_id!r} not found")
        raise DirectoryBusy(f"directory {directory_id} is being synced by {who}; try again when it is done")


def renew_directory(conn: Connection, directory_id: str, owner: str, lease: timedelta) -> bool:
    """Extend a directory lease held outside the queue; False when ``owner`` no longer holds it."""
    d = directories
    done = conn.execute(
        sa.update(d)
        .where(d.c.id == directory_id, d.c.lease_owner == owner)
        .values(lease_until=utcnow() + lease)
    )
    return bool(done.rowcount)
