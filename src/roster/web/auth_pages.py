"""Sign-in at ``/``, sign-out, and the operators' choice of an organization."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from roster.status import organization_health
from roster.store import repo
from roster.web import sessions
from roster.web.render import (
    Redirect,
    RuntimeDep,
    SessionDep,
    check_csrf,
    current,
    page,
    redirect,
    set_cookie,
)
from roster.web.signin import sign_in

router = APIRouter(include_in_schema=False)

Field = Annotated[str, Form()]


def _signin_page(request: Request, error: str | None = None, email: str = "", status: int = 200) -> Response:
    """The sign-in form; a fresh pre-sign-in value (cookie) gives its form a CSRF token."""
    pre = secrets.token_urlsafe(24)
    context = {"error": error, "email": email, "signin_csrf": sessions.csrf_for(pre)}
    response = page(request, "signin.html", context, status=status)
    set_cookie(request, response, sessions.PRE_COOKIE, pre, max_age=3600)
    return response


@router.get("/")
def home(request: Request) -> Response:
    session = current(request)
    if session is None:
        return _signin_page(request)
    return redirect("/console/directories" if session.organization_id else "/console/organizations")


@router.post("/sign-in")
def do_sign_in(request: Request, rt: RuntimeDep, email: Field, password: Field, csrf: Field) -> Response:
    if not sessions.csrf_ok(request.cookies.get(sessions.PRE_COOKIE), csrf):
        return _signin_page(request, "The sign-in form expired. Please try again.", email, 403)
    address = request.client.host if request.client else None
    result = sign_in(rt, email, password, address)
    if not result.ok:
        return _signin_page(
            request, result.message, email, 401 if result.reason != "too_many_attempts" else 429
        )
    with rt.engine.begin() as conn:
        token = sessions.start(
            conn,
            rt.settings,
            operator_id=result.operator_id,
            account_id=result.account_id,
            organization_id=result.organization_id,
        )
    response = redirect("/console/directories" if result.organization_id else "/console/organizations")
    set_cookie(
        request, response, sessions.COOKIE, token, max_age=int(rt.settings.console_session_hours * 3600)
    )
    response.delete_cookie(sessions.PRE_COOKIE, path="/")
    return response


@router.post("/sign-out")
def sign_out(request: Request, rt: RuntimeDep, session: SessionDep, csrf: Field) -> Response:
    check_csrf(session, csrf)
    with rt.engine.begin() as conn:
        sessions.end(conn, request.cookies.get(sessions.COOKIE))
    response = redirect("/")
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


SHOWN = 100  # organizations listed at once; a search narrows a fleet down


@router.get("/console/organizations")
def organizations(
    request: Request,
    rt: RuntimeDep,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    attention: bool = False,
) -> Response:
    """Every organization (an operator's view of the fleet): found by name or domain, with its
    directories and how many need attention; those that do come first."""
    if not session.is_operator:
        raise Redirect("/console/directories")
    with rt.engine.connect() as conn:
        orgs, health = repo.list_organizations(conn), organization_health(conn)
    needle = q.strip().lower()
    rows = [
        {**o, **health.get(o["id"], {"directories": 0, "attention": 0})}
        for o in orgs
        if needle in o["name"].lower() or needle in (o["domain"] or "").lower()
    ]
    rows = [r for r in rows if r["attention"]] if attention else rows
    rows.sort(key=lambda r: (-r["attention"], r["name"].lower()))
    context = {
        "organizations": rows[:SHOWN],
        "more": max(0, len(rows) - SHOWN),
        "q": q,
        "attention": attention,
        "total": len(orgs),
    }
    return page(request, "organizations.html", context, session)


@router.post("/console/organizations")
def choose(
    request: Request, rt: RuntimeDep, session: SessionDep, organization: Field, csrf: Field
) -> Response:
    check_csrf(session, csrf)
    with rt.engine.begin() as conn:
        chosen = sessions.choose_organization(conn, session, organization)
    return redirect("/console/directories" if chosen else "/console/organizations")
