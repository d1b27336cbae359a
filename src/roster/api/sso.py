"""The WorkOS SSO API shape: ``GET /sso/authorize`` and ``POST /sso/token`` (what the official SDK's
``sso.get_authorization_url`` and ``sso.get_profile_and_token`` use), and Roster's own callback
from the identity provider. See ``roster.sso.service``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from roster.api.auth import RuntimeDep
from roster.api.errors import ApiError
from roster.sso import service
from roster.store import repo

router = APIRouter(tags=["sso"])


def _callback(request: Request) -> str:
    return str(request.url_for("sso_callback"))


@router.get("/sso/authorize")
def authorize(
    request: Request,
    rt: RuntimeDep,
    redirect_uri: str,
    organization: str | None = None,
    state: str | None = None,
    response_type: str = "code",
    client_id: str | None = None,
) -> RedirectResponse:
    """WorkOS SSO: start an OpenID Connect sign-in with the organization's Entra ID directory;
    redirects to the identity provider."""
    if response_type != "code":
        raise ApiError(422, "invalid_request", "response_type: only 'code' is supported")
    if not organization:
        raise ApiError(422, "invalid_request", "organization: is required (an organization id)")
    try:
        callback = _callback(request)
        url = service.start(rt.engine, rt.box, rt.settings, organization, redirect_uri, state, callback)
    except service.SsoError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return RedirectResponse(url, status_code=302)


@router.post("/sso/callback", name="sso_callback")
async def callback(request: Request, rt: RuntimeDep) -> RedirectResponse:
    """The provider's form post (``response_mode=form_post``): ``state`` and ``code``, or ``error``."""
    form = await request.form()
    state, code, error = (str(form.get(k) or "") or None for k in ("state", "code", "error"))
    if state is None:
        raise ApiError(422, "invalid_request", "state: is required")
    problem = f"{error}: {form.get('error_description') or ''}" if error else None
    try:
        url = service.finish(rt.engine, rt.box, rt.settings, state, code, problem)
    except service.SsoError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return RedirectResponse(url, status_code=303)  # the browser follows a form post with a GET


@router.post("/sso/token")
async def token(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """The host application's server: ``client_secret`` (its API key, in the body or as a bearer
    token), ``grant_type=authorization_code`` and the ``code``; JSON or a form."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
    else:
        body = dict(await request.form())
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "body: must be an object")
    if body.get("grant_type") != "authorization_code":
        raise ApiError(422, "invalid_request", "grant_type: only 'authorization_code' is supported")
    header = request.headers.get("authorization", "")
    key = str(body.get("client_secret") or (header[7:] if header.lower().startswith("bearer ") else ""))
    with rt.engine.begin() as conn:
        who = repo.authenticate(conn, key) if key else None
        if who is None:
            raise ApiError(401, "unauthorized", "client_secret: not a valid API key")
        try:
            return service.redeem_code(conn, who, str(body.get("code") or ""))
        except service.SsoError as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None
