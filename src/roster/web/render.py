"""Rendering and the request plumbing every console page shares: templates, the session,
CSRF checks on forms, redirects, and the security headers of every console response."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Connection
from starlette.datastructures import FormData

from roster.runtime import Runtime
from roster.store.db import as_utc
from roster.store.repo import NotFound
from roster.web import sessions
from roster.web.sessions import Session

HERE = Path(__file__).parent
_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(value: Any) -> str:
    """A timestamp as people read it (UTC), or an em dash."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    stamp = as_utc(value)
    assert stamp is not None
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


_env.filters["when"] = when


class Redirect(Exception):
    """Raised by a dependency to send the browser elsewhere (to sign in, to pick an organization)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class Refused(Exception):
    """A console request refused with a page (a missing CSRF token, another organization's page)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def current(request: Request) -> Session | None:
    rt = runtime(request)
    with rt.engine.begin() as conn:
        return sessions.load(conn, rt.settings, request.cookies.get(sessions.COOKIE))


def signed_in(request: Request) -> Session:
    session = current(request)
    if session is None:
        raise Redirect("/")
    return session


def in_organization(session: Annotated[Session, Depends(signed_in)]) -> Session:
    if session.organization_id is None:
        raise Redirect("/console/organizations")
    return session


SessionDep = Annotated[Session, Depends(signed_in)]
OrgSession = Annotated[Session, Depends(in_organization)]
RuntimeDep = Annotated[Runtime, Depends(runtime)]


def check_csrf(session: Session, token: str | None) -> None:
    if not token or not hmac.compare_digest(session.csrf, token):
        raise Refused(403, "This form has expired", "Reload the page and send the form again.")


async def checked_form(request: Request, session: Session) -> FormData:
    """A posted console form, refused unless it carries the session's CSRF token."""
    form = await request.form()
    check_csrf(session, str(form.get("csrf") or ""))
    return form


def owned(
    rt: Runtime, session: Session, fetch: Callable[[Connection], dict[str, Any]], what: str
) -> dict[str, Any]:
    """An object of the session's organization (``fetch`` reads it, raising NotFound): another
    organization's object and a missing one answer alike, 404."""
    with rt.engine.connect() as conn:
        try:
            row = fetch(conn)
        except NotFound:
            raise Refused(404, "Not found", f"There is no such {what} in this organization.") from None
    check_org(session, row["organization_id"])
    return row


def check_org(session: Session, organization_id: str) -> None:
    """Another organization's object answers as if it did not exist."""
    if organization_id != session.organization_id:
        raise Refused(404, "Not found", "There is no such page in this organization.")


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    session: Session | None = None,
    status: int = 200,
) -> HTMLResponse:
    html = _env.get_template(template).render(
        request=request, session=session, csrf=session.csrf if session else None, **context
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def fragment(template: str, context: Mapping[str, Any]) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**context), headers=HEADERS)


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=HEADERS)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=_https(request),
        samesite="lax",
        path="/",
    )


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or runtime(request).settings.public_url.startswith("https://")
