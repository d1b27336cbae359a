"""A directory's lifecycle actions (disable with e-mailed confirmation, enable, a new SCIM token) and
the organization's sync settings (daily sync time and zone, incremental interval, group removal
policy, deletion guard)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from roster.accounts import lifecycle
from roster.api.accounts import OrganizationPatch
from roster.directories import rotate_scim_token
from roster.store import repo
from roster.store.schema import organizations
from roster.sync.schedule import parse_time, zone
from roster.web.directory_pages import owned_directory
from roster.web.render import OrgSession, RuntimeDep, checked_form, page, redirect

router = APIRouter(prefix="/console", include_in_schema=False)
FIELDS: tuple[str, ...] = ("timezone", "daily_sync_time", "incremental_minutes", "group_removal_policy")
FIELDS += ("guard_max_share", "guard_min_count")


@router.post("/directories/{directory_id}/lifecycle")
async def lifecycle_action(
    request: Request, rt: RuntimeDep, session: OrgSession, directory_id: str
) -> Response:
    form = await checked_form(request, session)
    owned_directory(rt, session, directory_id)
    action = form.get("action")
    here = f"/console/directories/{directory_id}"
    if action == "disable":
        with rt.engine.begin() as conn:
            sent = lifecycle.request_disable(conn, rt.settings, directory_id)
        return redirect(
            f"{here}?notice=A+confirmation+link+was+e-mailed+to+{sent}+admin(s).+Nothing+changes+until+one+of+them+confirms."
        )
    if action == "enable":
        with rt.engine.begin() as conn:
            lifecycle.enable(conn, directory_id)
        return redirect(f"{here}?notice={quote_plus('Enabled. The next sync links accounts again.')}")
    if action == "rotate_scim_token":
        token = rotate_scim_token(rt, directory_id, timedelta(minutes=60))
        return page(request, "scim_token.html", {"token": token, "directory_id": directory_id}, session)
    return redirect(here)


@router.get("/settings")
def settings_page(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    with rt.engine.connect() as conn:
        org = repo.get_organization(conn, str(session.organization_id))
    values = {k: "" if org[k] is None else str(org[k]) for k in FIELDS}
    return page(request, "settings.html", {"values": values, "errors": {}, "saved": False}, session)


@router.post("/settings")
async def save_settings(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    form = await checked_form(request, session)
    values = {k: str(form.get(k) or "").strip() for k in FIELDS}
    changes, errors = _checked(values)
    if errors:
        context = {"values": values, "errors": errors, "saved": False}
        return page(request, "settings.html", context, session, status=422)
    with rt.engine.begin() as conn:
        conn.execute(
            sa.update(organizations).where(organizations.c.id == session.organization_id).values(**changes)
        )
    return page(request, "settings.html", {"values": values, "errors": {}, "saved": True}, session)


def _checked(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The admin API's rules (OrganizationPatch, time zone and HH:MM); an empty field means the default."""
    given = {k: v for k, v in values.items() if v}
    errors: dict[str, str] = {}
    try:
        body = OrganizationPatch.model_validate(given)
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "form"
            errors.setdefault(field, f"{field}: {e['msg']}")
        return {}, errors
    for field, check in (("timezone", zone), ("daily_sync_time", parse_time)):
        if field in given:
            try:
                check(given[field])
            except ValueError as exc:
                errors[field] = str(exc)
    changes = body.model_dump(exclude_unset=True)
    for field in ("incremental_minutes", "guard_max_share", "guard_min_count"):
        changes.setdefault(field, None)  # empty: off, or the server's default
    return changes, errors
