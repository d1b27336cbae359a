"""Accounts and groups of the organization, and the Alert settings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from roster.accounts.lifecycle import set_alerts
from roster.store import repo
from roster.store.schema import accounts, app_groups, directories
from roster.web.render import OrgSession, RuntimeDep, checked_form, page, redirect

router = APIRouter(prefix="/console", include_in_schema=False)
KINDS = {
    "linked": "Linked to the directory",
    "unlinked": "Unlinked (local password)",
    "disabled": "Disabled by the directory",
}
MOST = 500


def _kind(row: Any) -> str:
    if row.disabled and row.disabled_reason == "directory":
        return "disabled"
    return "linked" if row.directory_user_id else "unlinked"


@router.get("/accounts")
def account_list(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    shown = request.query_params.get("kind") if request.query_params.get("kind") in KINDS else None
    a = accounts
    with rt.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                a.c.id,
                a.c.email,
                a.c.name,
                a.c.role,
                a.c.disabled,
                a.c.disabled_reason,
                a.c.directory_user_id,
            )
            .where(a.c.organization_id == session.organization_id)
            .order_by(a.c.email_lower)
        ).all()
    listed = [{**r._asdict(), "kind": _kind(r)} for r in rows]
    counts = {k: sum(1 for r in listed if r["kind"] == k) for k in KINDS}
    if shown:
        listed = [r for r in listed if r["kind"] == shown]
    context = {
        "accounts": listed[:MOST],
        "total": len(listed),
        "kinds": KINDS,
        "shown": shown,
        "counts": counts,
    }
    return page(request, "accounts.html", context, session)


@router.get("/groups")
def group_list(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    g, d = app_groups, directories
    with rt.engine.connect() as conn:
        rows = conn.execute(
            sa.select(g.c.id, g.c.name, g.c.description, g.c.source, g.c.state, d.c.name.label("directory"))
            .select_from(g.outerjoin(d, d.c.id == g.c.directory_id))
            .where(g.c.organization_id == session.organization_id)
            .order_by(sa.func.lower(g.c.name), g.c.source)
        ).all()
    listed = [r._asdict() for r in rows]
    return page(request, "groups.html", {"groups": listed[:MOST], "total": len(listed)}, session)


@router.get("/alerts")
def alerts(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    return page(request, "alerts.html", _alerts_context(rt, session, []), session)


@router.post("/alerts")
async def save_alerts(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    form = await checked_form(request, session)
    only = form.get("only_selected") == "1"
    chosen = [str(v) for v in form.getlist("recipients")]
    assert session.organization_id is not None
    with rt.engine.begin() as conn:
        warnings = set_alerts(conn, session.organization_id, only, chosen)
    if warnings:
        return page(request, "alerts.html", _alerts_context(rt, session, warnings), session)
    return redirect("/console/alerts?saved=1")


def _alerts_context(rt: Any, session: Any, warnings: list[str]) -> dict[str, Any]:
    a = accounts
    with rt.engine.connect() as conn:
        org = repo.get_organization(conn, session.organization_id)
        admins = conn.execute(
            sa.select(a.c.id, a.c.email, a.c.name)
            .where(a.c.organization_id == session.organization_id, a.c.role == "admin")
            .order_by(a.c.email_lower)
        ).all()
    chosen = set(org["alert_recipients"] or [])
    return {
        "only_selected": org["notify_only_selected"],
        "admins": [{**r._asdict(), "chosen": r.id in chosen} for r in admins],
        "warnings": warnings,
    }
