"""Directories, a directory's Status, "Sync now" and "Preview", and Configuration » Directory."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from roster.api.sync_runner import SyncBusy
from roster.connectors.base import ConfigError
from roster.directories import ConnectionFailed, login_warnings, test_directory, update_directory_settings
from roster.domain.ldap_path import SearchPathError, parse_search_path
from roster.domain.mapping import GROUP_FIELDS, USER_FIELDS
from roster.sources import source_type
from roster.store import repo
from roster.web import views
from roster.web.link_pages import live_link
from roster.web.render import (
    OrgSession,
    RuntimeDep,
    checked_form,
    fragment,
    owned,
    page,
    redirect,
)

router = APIRouter(prefix="/console", include_in_schema=False)
LDAP_TYPES = ("ldap", "active_directory")
WAIT_SECONDS = 20.0  # "Sync now" waits this long for the run, then shows the status instead


def owned_directory(rt: Any, session: Any, directory_id: str) -> dict[str, Any]:
    return owned(rt, session, lambda conn: repo.get_directory(conn, directory_id), "directory")


@router.get("/directories")
def directories(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    with rt.engine.connect() as conn:
        window = rt.settings.schedule_spread_seconds
        rows = [views.summary(conn, r, window) for r in repo.list_directories(conn, session.organization_id)]
        live = live_link(conn, str(session.organization_id))
    return page(request, "directories.html", {"directories": rows, "live_link": live}, session)


@router.get("/directories/{directory_id}")
def directory(request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str) -> Response:
    row = owned_directory(rt, session, directory_id)
    with rt.engine.connect() as conn:
        context = {
            "d": row,
            "status": views.status(conn, row, rt.settings),
            "changes": views.last_changes(conn, directory_id),
            "pushed": source_type(row["type"]).pushed,
            "notice": request.query_params.get("notice"),
        }
    return page(request, "directory.html", context, session)


@router.get("/directories/{directory_id}/status")
def status_box(rt: RuntimeDep, session: OrgSession, directory_id: str) -> Response:
    """The Status box alone: the page refreshes it at the access-check interval."""
    row = owned_directory(rt, session, directory_id)
    with rt.engine.connect() as conn:
        return fragment("status.html", {"status": views.status(conn, row, rt.settings), "d": row})


@router.post("/directories/{directory_id}/sync")
async def sync_now(request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str) -> Response:
    form = await checked_form(request, session)
    row = owned_directory(rt, session, directory_id)
    preview = form.get("preview") == "1"
    runner = request.app.state.runner
    try:
        job_id = runner.submit(row["id"], trigger="console", dry_run=preview, force=False)
    except SyncBusy as exc:
        return redirect(f"/console/directories/{directory_id}?notice={quote_plus(str(exc))}")
    try:
        job = await anyio.to_thread.run_sync(lambda: runner.wait(job_id, WAIT_SECONDS))
    except TimeoutError:
        return redirect(f"/console/directories/{directory_id}?notice=The+run+is+still+going.")
    if job.get("run_id"):
        return redirect(f"/console/runs/{job['run_id']}")
    return redirect(f"/console/directories/{directory_id}?notice=The+run+failed+to+start.")


@router.get("/directories/{directory_id}/configuration")
def configuration(request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str) -> Response:
    row = owned_directory(rt, session, directory_id)
    return page(request, "configuration.html", _form_context(row, _values(row), {}), session)


@router.post("/directories/{directory_id}/configuration")
async def save_configuration(
    request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str
) -> Response:
    form = await checked_form(request, session)
    row = owned_directory(rt, session, directory_id)
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    errors = path_errors(values.get("search_paths", "")) if row["type"] in LDAP_TYPES else {}
    tenant, test = not session.is_operator, not values.get("no_test")
    if not errors:
        try:  # a changed server, secret or path is tested first (a network call: off the event loop)
            changes = _changes(row, values)
            await anyio.to_thread.run_sync(lambda: update_directory_settings(rt, row, changes, tenant, test))
        except ConnectionFailed as exc:
            hint = "nothing was saved; tick “Save without testing” to save it anyway"
            errors = {exc.field: {"message": f"{exc.field}: {exc.detail} ({hint})"}}
        except ConfigError as exc:
            errors = {_field_of(str(exc)): {"message": str(exc)}}
    if errors:
        context = _form_context(row, values, errors)
        return page(request, "configuration.html", context, session, status=422)
    return redirect(f"/console/directories/{directory_id}/configuration?saved=1")


@router.post("/directories/{directory_id}/test")
async def test_connection(
    request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str
) -> Response:
    await checked_form(request, session)
    row = owned_directory(rt, session, directory_id)
    tenant = not session.is_operator
    report = await anyio.to_thread.run_sync(lambda: test_directory(rt, directory_id, tenant))
    context = _form_context(row, _values(row), {})
    context["report"] = report
    return page(request, "configuration.html", context, session)


def _values(row: dict[str, Any]) -> dict[str, str]:
    """The form's fields as stored (the secret is never sent back)."""
    cfg = row["config"] or {}
    values = {
        "name": row["name"],
        "search_paths": "\n".join(cfg.get("search_paths") or ()),
        "url": cfg.get("url") or "",
        "bind_dn": cfg.get("bind_dn") or "",
        "start_tls": "1" if cfg.get("start_tls") else "",
        "near_real_time_seconds": str(cfg.get("near_real_time_seconds") or ""),
        "tenant_id": cfg.get("tenant_id") or "",
        "client_id": cfg.get("client_id") or "",
    }
    for kind, fields in (("user", USER_FIELDS), ("group", GROUP_FIELDS)):
        for name in fields:
            values[f"map_{kind}_{name}"] = ((cfg.get("mapping") or {}).get(kind) or {}).get(name, "")
    return values


def _changes(row: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The settings a submitted form changes, as ``update_directory_settings`` takes them."""
    agent = (row["config"] or {}).get("connection") == "agent"
    changes: dict[str, Any] = {"name": values.get("name", "").strip()}
    if row["type"] in LDAP_TYPES:
        changes["search_paths"] = [
            p.strip() for p in values.get("search_paths", "").splitlines() if p.strip()
        ]
        if not agent:
            changes.update(url=values.get("url", "").strip(), bind_dn=values.get("bind_dn", "").strip())
            changes["start_tls"] = values.get("start_tls") == "1"
            changes["bind_password"] = values.get("bind_password") or None
        mapping: dict[str, dict[str, str]] = {}
        for kind, fields in (("user", USER_FIELDS), ("group", GROUP_FIELDS)):
            chosen = {n: values.get(f"map_{kind}_{n}", "").strip() for n in fields}
            if any(chosen.values()):
                mapping[kind] = {n: a for n, a in chosen.items() if a}
        changes["mapping"] = mapping
        near = values.get("near_real_time_seconds", "").strip()
        if near and not near.isdigit():
            raise ConfigError("near_real_time_seconds: must be a whole number of seconds, or empty for off")
        changes["near_real_time_seconds"] = int(near) if near else None
    elif row["type"] == "azure":
        changes.update(
            tenant_id=values.get("tenant_id", "").strip(), client_id=values.get("client_id", "").strip()
        )
        changes["client_secret"] = values.get("client_secret") or None
    return changes


def path_errors(text: str) -> dict[str, dict[str, Any]]:
    """Each search path checked on its own: the first broken one is named, its element marked."""
    lines = [p for p in text.splitlines() if p.strip()]
    if not lines:
        return {
            "search_paths": {"message": "Give at least one search path, e.g. CN=Users, DC=domain, DC=local"}
        }
    for number, line in enumerate(lines, start=1):
        try:
            parse_search_path(line)
        except SearchPathError as exc:
            return {
                "search_paths": {"message": f"Line {number}: {exc}", "line": line, "element": exc.element}
            }
    return {}


def _field_of(message: str) -> str:
    head = message.split(":", 1)[0].strip()
    return head if head.isidentifier() else "form"


def _form_context(row: dict[str, Any], values: dict[str, str], errors: dict[str, Any]) -> dict[str, Any]:
    cfg = row["config"] or {}
    return {
        "d": row,
        "values": values,
        "errors": errors,
        "ldap": row["type"] in LDAP_TYPES,
        "agent": cfg.get("connection") == "agent",
        "method": views.method(row),
        "user_fields": USER_FIELDS,
        "group_fields": GROUP_FIELDS,
        "has_secret": bool(row["secret"]),
        "report": None,
        "warnings": login_warnings(cfg),
    }
