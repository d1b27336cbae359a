"""The Sync log (runs and their per-object changes), a run's page, and Approve / Reject."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from roster.store import repo
from roster.store.schema import sync_log
from roster.sync.approvals import NotPending, approve, reject
from roster.web import views
from roster.web.directory_pages import owned_directory
from roster.web.render import OrgSession, Refused, RuntimeDep, checked_form, owned, page, redirect

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE = 100
CHANGES = (
    "user_created",
    "user_updated",
    "user_removed",
    "group_created",
    "group_updated",
    "group_deleted",
    "member_added",
    "member_removed",
    "skipped",
    "note",
)


@router.get("/directories/{directory_id}/log")
def runs(request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str) -> Response:
    row = owned_directory(rt, session, directory_id)
    with rt.engine.connect() as conn:
        listed = [views.run_summary(r) for r in repo.list_runs(conn, directory_id, 100)]
    context = {"d": row, "runs": listed, "retention_days": rt.settings.sync_log_retention_days}
    return page(request, "log.html", context, session)


def _run(rt: Any, session: Any, run_id: str) -> dict[str, Any]:
    return owned(rt, session, lambda conn: repo.get_run(conn, run_id), "sync run")


@router.get("/runs/{run_id}")
def run_page(request: Request, rt: RuntimeDep, session: OrgSession, run_id: str) -> Response:
    run = _run(rt, session, run_id)
    q = request.query_params
    change = q.get("change") if q.get("change") in CHANGES else None
    search = (q.get("q") or "").strip()[:200]
    after = q.get("after") or None
    with rt.engine.connect() as conn:
        entries = _entries(conn, run_id, change, search, after)
        context = {
            "run": views.run_summary(run),
            "d": repo.get_directory(conn, run["directory_id"]),
            "people": views.people_of(conn, run_id, 500),
            "entries": entries[:PAGE],
            "more": entries[PAGE - 1]["id"] if len(entries) > PAGE else None,
            "filters": {"change": change or "", "q": search},
            "changes": CHANGES,
        }
    return page(request, "run.html", context, session)


def _entries(
    conn: Any, run_id: str, change: str | None, search: str, after: str | None
) -> list[dict[str, Any]]:
    """One page (and one more entry, to know there is a next page) of a run's log."""
    lg = sync_log
    query = sa.select(lg).where(lg.c.run_id == run_id)
    if change:
        query = query.where(lg.c.change == change)
    if search:  # a name or an e-mail address anywhere in the entry
        pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            sa.or_(
                sa.func.lower(lg.c.detail).like(pattern, escape="\\"),
                sa.func.lower(lg.c.external_id).like(pattern, escape="\\"),
            )
        )
    if after:
        query = query.where(lg.c.id > after)
    rows = conn.execute(query.order_by(lg.c.id).limit(PAGE + 1)).mappings().all()
    return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


@router.post("/runs/{run_id}/decision")
async def decide(request: Request, rt: RuntimeDep, session: OrgSession, run_id: str) -> Response:
    form = await checked_form(request, session)
    _run(rt, session, run_id)
    choice = form.get("decision")
    try:
        with rt.engine.begin() as conn:
            if choice == "approve":
                approve(conn, run_id)
            elif choice == "reject":
                reject(conn, run_id)
            else:
                raise Refused(400, "Unknown decision", "Choose Approve or Reject.")
    except NotPending as exc:
        raise Refused(409, "Already decided", str(exc)) from None
    return redirect(f"/console/runs/{run_id}")
