"""The admin API's sync runs under /api/v1: start one (and wait for it), list, show with its
log, approve or reject a held one, cancel a running one, and the sync log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from roster.api.auth import PrincipalDep, RuntimeDep, check_org, owned_directory
from roster.api.errors import ApiError
from roster.api.models import Strict
from roster.api.pagination import check_cursor
from roster.api.sync_runner import SyncBusy
from roster.store import jobs, repo
from roster.store.db import as_utc, iso

router = APIRouter(prefix="/api/v1", tags=["admin"])


class SyncIn(Strict):
    dry_run: bool = False
    force: bool = Field(default=False, description="Apply even if the deletion guard objects.")
    full: bool = Field(default=False, description="Read everything, even if an incremental run is possible.")
    wait: bool = Field(default=False, description="Answer when the run has finished.")


def plan_lists(conn: Any, run_id: str) -> dict[str, Any]:
    """The reference guide's two lists: new accounts since the last sync, and accounts deleted there."""

    entries = repo.run_log(conn, run_id, 100_000)
    new = [
        json.loads(e["detail"]) | {"idp_id": e["external_id"]}
        for e in entries
        if e["change"] == "user_created"
    ]
    gone = [
        {"id": e["object_id"], "idp_id": e["external_id"]} for e in entries if e["change"] == "user_removed"
    ]
    return {"new_accounts_since_last_sync": new, "deleted_from_directory": gone}


def run_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "sync_run",
        **{
            k: row[k]
            for k in (
                "id",
                "directory_id",
                "organization_id",
                "trigger",
                "kind",
                "status",
                "counts",
                "error",
                "error_reason",
            )
        },
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
    }


@router.post("/directories/{directory_id}/sync_runs", status_code=202)
def trigger_sync(
    directory_id: str, rt: RuntimeDep, who: PrincipalDep, request: Request, body: SyncIn | None = None
) -> dict[str, Any]:
    """Queue a sync run (full, incremental, dry run, or forced past the deletion guard). With `wait:
    true` the answer is the finished run, or the queued job after ROSTER_SYNC_WAIT_SECONDS."""
    owned_directory(rt, who, directory_id)
    body = body or SyncIn()
    try:
        job_id = request.app.state.runner.submit(
            directory_id, trigger="api", dry_run=body.dry_run, full=body.full, force=body.force
        )
    except SyncBusy as exc:
        raise ApiError(409, "directory_disabled", str(exc)) from None
    if not body.wait:
        return {"status": "queued", "job_id": job_id}
    try:
        job = request.app.state.runner.wait(job_id, rt.settings.sync_wait_seconds)
    except TimeoutError:
        with rt.engine.connect() as conn:
            state = (jobs.get(conn, job_id) or {}).get("status", "queued")
        return {
            "status": state,
            "job_id": job_id,
            "message": f"not finished after {rt.settings.sync_wait_seconds:g} s (ROSTER_SYNC_WAIT_SECONDS); "
            f"its run appears in GET /api/v1/directories/{directory_id}/sync_runs",
        }
    if not job.get("run_id"):
        raise ApiError(409, "job_failed", f"job {job_id} failed before its run started: {job.get('error')}")
    with rt.engine.connect() as conn:
        return {**run_view(repo.get_run(conn, job["run_id"])), **plan_lists(conn, job["run_id"])}


@router.get("/directories/{directory_id}/sync_runs")
def list_runs(
    directory_id: str, rt: RuntimeDep, who: PrincipalDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    """A directory's sync runs, newest first."""
    owned_directory(rt, who, directory_id)
    with rt.engine.connect() as conn:
        rows = repo.list_runs(conn, directory_id, limit)
    return {"object": "list", "data": [run_view(r) for r in rows]}


@router.get("/sync_runs/{run_id}")
def get_run(
    run_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    log_limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    log_after: str | None = None,
) -> dict[str, Any]:
    """One sync run with its counts and its change log (paged with `log_after`)."""
    check_cursor("log_after", log_after)
    with rt.engine.connect() as conn:
        row = repo.get_run(conn, run_id)
        check_org(who, row["organization_id"], "sync run", run_id)
        entries = repo.run_log(conn, run_id, log_limit, log_after)
    log = [log_entry(e, with_run=False) for e in entries]
    with rt.engine.connect() as conn:
        lists = plan_lists(conn, run_id)
    return {
        **run_view(row),
        **lists,
        "log": log,
        "log_after": log[-1]["id"] if len(log) == log_limit else None,
    }


@router.post("/sync_runs/{run_id}/approve", status_code=202)
def approve_run(run_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Apply exactly what a held run would do (re-planned if the directory changed since)."""
    from roster.sync.approvals import approve

    with rt.engine.begin() as conn:
        run = repo.get_run(conn, run_id)
        check_org(who, run["organization_id"], "sync run", run_id)
        job_id = approve(conn, run_id)
    return {"status": "queued", "job_id": job_id}


@router.post("/sync_runs/{run_id}/reject")
def reject_run(run_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Reject a run the deletion guard held: nothing of it is applied."""
    from roster.sync.approvals import reject

    with rt.engine.begin() as conn:
        run = repo.get_run(conn, run_id)
        check_org(who, run["organization_id"], "sync run", run_id)
        reject(conn, run_id)
        return run_view(repo.get_run(conn, run_id))


@router.post("/sync_runs/{run_id}/cancel")
def cancel_run(run_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Mark a running run failed and release its directory (its process may have died); a live
    holder applies nothing. For a run stuck as ``running`` after a crash, or to stop one now."""
    with rt.engine.begin() as conn:
        run = repo.get_run(conn, run_id)
        check_org(who, run["organization_id"], "sync run", run_id)
        try:
            jobs.cancel_run(conn, run_id)
        except jobs.RunNotRunning as exc:
            raise ApiError(409, "not_running", str(exc)) from None
        return run_view(repo.get_run(conn, run_id))


@router.get("/sync_log")
def sync_log_entries(
    rt: RuntimeDep,
    who: PrincipalDep,
    directory_id: str,
    run_id: str | None = None,
    change: str | None = None,
    object_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_dry_runs: bool = False,
) -> dict[str, Any]:
    """Every change of every run of a directory, filtered by run, kind, object and time. What dry
    runs planned is left out unless ``include_dry_runs`` is set or ``run_id`` names one."""
    from datetime import datetime

    import sqlalchemy as sa

    from roster.store.schema import sync_log, sync_runs

    owned_directory(rt, who, directory_id)
    q = sa.select(sync_log).where(sync_log.c.directory_id == directory_id)
    if run_id:
        q = q.where(sync_log.c.run_id == run_id)
    elif not include_dry_runs:
        dry = sa.select(sync_runs.c.id).where(
            sync_runs.c.directory_id == directory_id, sync_runs.c.kind == "dry_run"
        )
        q = q.where(sync_log.c.run_id.not_in(dry))
    if change:
        q = q.where(sync_log.c.change == change)
    if object_id:
        q = q.where(sa.or_(sync_log.c.object_id == object_id, sync_log.c.external_id == object_id))
    for name, value, op in (("since", since, "ge"), ("until", until, "lt")):
        if value:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(
                    422, "invalid_request_parameters", f"{name}: {value!r} is not an ISO 8601 time"
                ) from None
            utc = as_utc(when)  # an offset is honoured, a time without one is UTC (as stored)
            q = q.where(sync_log.c.created_at >= utc if op == "ge" else sync_log.c.created_at < utc)
    check_cursor("after", after)
    if after:
        q = q.where(sync_log.c.id > after)
    with rt.engine.connect() as conn:
        rows = conn.execute(q.order_by(sync_log.c.id).limit(limit)).mappings().all()
    data = [log_entry(r) for r in rows]
    return {"object": "list", "data": data, "after": data[-1]["id"] if len(data) == limit else None}


def log_entry(row: Any, with_run: bool = True) -> dict[str, Any]:
    """One sync-log entry as the API shows it (a run's own log leaves out its run id)."""
    entry = {"id": row["id"], "run_id": row["run_id"]} if with_run else {"id": row["id"]}
    return entry | {
        "change": row["change"],
        "object_type": row["object_type"],
        "object_id": row["object_id"],
        "external_id": row["external_id"],
        "detail": json.loads(row["detail"]),
        "created_at": iso(row["created_at"]),
    }
