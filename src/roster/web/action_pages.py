"""The pages of e-mailed links: each explains what it will do and waits for a click.

Opening a link changes nothing (mail scanners open links too); the button does. The link's
token is the credential, and its form's CSRF token is derived from it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from roster.accounts import lifecycle
from roster.accounts.passwords import MIN_LENGTH, WeakPassword
from roster.store import repo
from roster.web.render import page
from roster.web.sessions import csrf_for, csrf_ok

router = APIRouter(prefix="/actions", include_in_schema=False)
TITLES = {
    "recover_access": "Recover access to Roster",
    "reset_password": "Set a password for your account",
    "confirm_disable": "Confirm disabling the directory",
}
_STATUS = {"link_invalid": 404, "link_used": 410, "link_expired": 410}


def _action(request: Request, token: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    rt = request.app.state.runtime
    with rt.engine.connect() as conn:
        action = lifecycle.look_up(conn, token)
        directory = repo.get_directory(conn, action["directory_id"]) if action.get("directory_id") else None
    return action, directory


def _show(request: Request, token: str, error: str | None = None, status: int = 200) -> Response:
    try:
        action, directory = _action(request, token)
    except lifecycle.LinkError as exc:
        return _unusable(request, exc)
    context: dict[str, Any] = {
        "action": action,
        "directory": directory,
        "title": TITLES.get(action["kind"], "E-mailed link"),
        "csrf_token": csrf_for(token),
        "error": error,
        "min_length": MIN_LENGTH,
    }
    return page(request, "action.html", context, status=status)


def _unusable(request: Request, exc: lifecycle.LinkError) -> Response:
    context = {"title": "This link cannot be used", "message": f"{str(exc).capitalize()}."}
    return page(request, "message.html", context, status=_STATUS.get(exc.code, 404))


@router.get("/{token}")
def show(request: Request, token: str) -> Response:
    return _show(request, token)


@router.post("/{token}")
async def perform(request: Request, token: str) -> Response:
    form = await request.form()
    if not csrf_ok(token, str(form.get("csrf") or "")):
        return _show(request, token, "The form expired. Please try again.", 403)
    password = str(form.get("password") or "") or None
    if password is not None and password != str(form.get("password_again") or ""):
        return _show(request, token, "The two passwords differ.", 422)
    rt = request.app.state.runtime
    try:
        with rt.engine.begin() as conn:
            result = lifecycle.perform(conn, rt.settings, token, password)
    except lifecycle.LinkError as exc:
        return _unusable(request, exc)
    except (WeakPassword, ValueError) as exc:
        return _show(request, token, str(exc), 422)
    done = {
        "recover_access": "Your account no longer depends on the directory. Sign in with your new password "
        "and correct the directory's configuration.",
        "reset_password": "Your password is set. Sign in to the application with it from now on.",
        "confirm_disable": f"The directory is disabled. {result.get('unlinked', 0)} account(s) it "
        "managed were unlinked; each got an e-mail to set a password.",
    }
    context = {"title": "Done", "message": done.get(result["done"], "Done.")}
    return page(request, "message.html", context)
