"""The pages a setup link opens: the customer's IT admin connects the directory, no account needed.

The link's token is the only credential; forms carry a CSRF token derived from it. The admin
picks a method (LDAP/AD direct, the on-prem agent, Microsoft Entra ID, SCIM), is guided through
it, and ends with a first sync (or the first SCIM request) and a summary of what arrived.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from roster import setup_links
from roster.agent import registry
from roster.api.sync_runner import SyncBusy
from roster.connectors.base import ConfigError
from roster.directories import DirectorySpec, create_directory, test_directory
from roster.setup_links import SetupLink
from roster.sources.scim import PROVIDERS
from roster.store import repo
from roster.store.schema_access import scim_requests
from roster.web import views
from roster.web.directory_pages import path_errors
from roster.web.render import Refused, fragment, page, redirect
from roster.web.sessions import csrf_for, csrf_ok
from roster.web.setup_guides import ENTRA_STEPS, SCIM_GUIDES

router = APIRouter(prefix="/setup", include_in_schema=False)
METHODS = ("ldap", "agent", "azure", "scim")
WAIT_SECONDS = 60.0


def _link(request: Request, token: str) -> SetupLink:
    rt = request.app.state.runtime
    with rt.engine.connect() as conn:
        link = setup_links.resolve(conn, token)
    if link is None:
        raise Refused(
            404,
            "This setup link cannot be used",
            "It expired, or a newer link replaced it. Ask the application's administrator for a new one.",
        )
    return link


async def _form(request: Request, token: str) -> dict[str, str]:
    form = await request.form()
    if not csrf_ok(token, str(form.get("csrf") or "")):
        raise Refused(403, "This form has expired", "Reload the page and send the form again.")
    return {k: str(v) for k, v in form.items() if k != "csrf"}


def _page(request: Request, token: str, link: SetupLink, template: str, context: dict[str, Any]) -> Response:
    status = int(context.pop("http_status", 200))
    base = {"link": link, "token": token, "setup_csrf": csrf_for(token), "methods": METHODS}
    return page(request, template, {**base, **context}, status=status)


@router.get("/{token}")
def start(request: Request, token: str) -> Response:
    link = _link(request, token)
    if link.directory_id is None:
        context = {"providers": PROVIDERS, "values": {}, "entra_steps": ENTRA_STEPS}
        return _page(request, token, link, "setup_choose.html", context)
    return _progress(request, token, link, {})


def _progress(request: Request, token: str, link: SetupLink, extra: dict[str, Any]) -> Response:
    rt = request.app.state.runtime
    assert link.directory_id is not None
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, link.directory_id)
        context = {
            "d": row,
            "method": views.method(row),
            "status": views.status(conn, row, rt.settings),
            "counts": repo.directory_metadata(conn, row["id"]),
            "scim_seen": _scim_requests(conn, row["id"]) if row["type"] == "scim" else None,
            "guide": SCIM_GUIDES.get((row["config"] or {}).get("provider", "generic")),
            "public_url": rt.settings.public_url.rstrip("/"),
            **extra,
        }
    return _page(request, token, link, "setup_progress.html", context)


def _scim_requests(conn: Any, directory_id: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(scim_requests)
            .where(scim_requests.c.directory_id == directory_id)
        ).scalar_one()
    )


@router.get("/{token}/waiting")
def waiting(request: Request, token: str) -> Response:
    """What arrived so far (the SCIM page asks every few seconds until the first request)."""
    link = _link(request, token)
    rt = request.app.state.runtime
    if link.directory_id is None:
        raise Refused(404, "Nothing to show yet", "Choose a method first.")
    with rt.engine.connect() as conn:
        seen = _scim_requests(conn, link.directory_id)
        counts = repo.directory_metadata(conn, link.directory_id)
    return fragment("setup_waiting.html", {"scim_seen": seen, "counts": counts})


@router.post("/{token}/directory")
async def create(request: Request, token: str) -> Response:
    """The chosen method's settings: the directory is created (every check applies), then tested."""
    link = _link(request, token)
    values = await _form(request, token)
    if link.directory_id is not None:  # sent again (a reload): one link sets up one directory
        return redirect(f"/setup/{token}")
    rt = request.app.state.runtime
    method = values.get("method", "")
    try:
        spec, errors = _spec(link, values)
        if errors:
            raise _Invalid(errors)
        row = await anyio.to_thread.run_sync(lambda: create_directory(rt, spec, tenant=True))
    except ConfigError as exc:
        field = str(exc).split(":", 1)[0].strip()
        return _invalid(request, token, link, values, {field if field.isidentifier() else "form": str(exc)})
    except _Invalid as exc:
        return _invalid(request, token, link, values, exc.errors)
    with rt.engine.begin() as conn:
        if not setup_links.attach(conn, link, row["id"]):  # a second submission lost the race
            repo.delete_directory(conn, row["id"])  # never announced: nothing to tell anyone
            return redirect(f"/setup/{token}")
        code = registry.issue_code(conn, row["id"], timedelta(days=3))[0] if method == "agent" else None
    link = _link(request, token)
    extra: dict[str, Any] = {"scim_token": row.get("scim_token"), "agent_code": code}
    if method in ("ldap", "azure"):
        extra["report"] = await anyio.to_thread.run_sync(lambda: test_directory(rt, row["id"], tenant=True))
    return _progress(request, token, link, extra)


class _Invalid(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid")
        self.errors = errors


def _invalid(
    request: Request, token: str, link: SetupLink, values: dict[str, str], errors: dict[str, str]
) -> Response:
    context = {"providers": PROVIDERS, "values": values, "errors": errors, "http_status": 422}
    context["entra_steps"] = ENTRA_STEPS
    return _page(request, token, link, "setup_choose.html", context)


def _spec(link: SetupLink, values: dict[str, str]) -> tuple[DirectorySpec, dict[str, str]]:
    method = values.get("method", "")
    name = values.get("name", "").strip() or f"{link.organization_name} directory"
    paths = [p.strip() for p in values.get("search_paths", "").splitlines() if p.strip()]
    kind = "active_directory" if values.get("type") == "active_directory" else "ldap"
    org = link.organization_id
    if method == "ldap":
        settings: dict[str, Any] = {"url": values.get("url", "").strip(), "search_paths": paths}
        settings["bind_dn"] = values.get("bind_dn", "").strip()
        errors = {k: v["message"] for k, v in path_errors(values.get("search_paths", "")).items()}
        return DirectorySpec(org, name, kind, settings, values.get("bind_password") or None), errors
    if method == "agent":
        errors = {k: v["message"] for k, v in path_errors(values.get("search_paths", "")).items()}
        return DirectorySpec(org, name, kind, {"connection": "agent", "search_paths": paths}), errors
    if method == "azure":
        settings = {k: values.get(k, "").strip() for k in ("tenant_id", "client_id")}
        return DirectorySpec(org, name, "azure", settings, values.get("client_secret") or None), {}
    if method == "scim":
        return DirectorySpec(org, name, "scim", {"provider": values.get("provider", "generic")}), {}
    return DirectorySpec(org, name, "ldap"), {"method": "Choose how Roster reaches the directory."}


@router.post("/{token}/sync")
async def first_sync(request: Request, token: str) -> Response:
    link = _link(request, token)
    await _form(request, token)
    if link.directory_id is None:
        return redirect(f"/setup/{token}")
    runner = request.app.state.runner
    directory_id = link.directory_id
    try:
        job_id = runner.submit(directory_id, trigger="setup")
        job = await anyio.to_thread.run_sync(lambda: runner.wait(job_id, WAIT_SECONDS))
    except (SyncBusy, TimeoutError):
        return _progress(
            request, token, link, {"sync_note": "The first sync is still running; this page shows it."}
        )
    rt = request.app.state.runtime
    with rt.engine.connect() as conn:
        run = repo.get_run(conn, job["run_id"]) if job.get("run_id") else None
    return _progress(request, token, link, {"first_run": views.run_summary(run)})
