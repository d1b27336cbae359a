"""Webhooks from the console: endpoints, the signing secret shown once, rotation, the delivery log
and redelivery. Every action goes through ``events.endpoints``, as the admin API's do."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from roster.events import endpoints
from roster.events.endpoints import EVENT_TYPES
from roster.store.repo import NotFound
from roster.store.schema import webhook_endpoints
from roster.web.render import OrgSession, Refused, RuntimeDep, checked_form, owned, page, redirect

router = APIRouter(prefix="/console", include_in_schema=False)


def _list(rt: Any, organization_id: str) -> list[dict[str, Any]]:
    e = webhook_endpoints
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(e).where(e.c.organization_id == organization_id).order_by(e.c.id))
        return [endpoints.view(r) for r in rows.mappings()]


@router.get("/webhooks")
def webhooks(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    context = {"endpoints": _list(rt, str(session.organization_id)), "event_types": EVENT_TYPES, "errors": {}}
    return page(request, "webhooks.html", context, session)


@router.post("/webhooks")
async def create(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    form = await checked_form(request, session)
    url = str(form.get("url") or "").strip()
    types = [str(t) for t in form.getlist("events")]
    try:
        made = endpoints.create(rt, str(session.organization_id), url, types or None)
    except ValueError as exc:
        context = {
            "endpoints": _list(rt, str(session.organization_id)),
            "event_types": EVENT_TYPES,
            "errors": {"url": str(exc)},
            "url": url,
        }
        return page(request, "webhooks.html", context, session, status=422)
    return page(request, "webhook_secret.html", {"endpoint": made}, session)


def _owned(rt: Any, session: Any, endpoint_id: str) -> dict[str, Any]:
    return owned(rt, session, lambda conn: endpoints.get(conn, endpoint_id), "webhook endpoint")


@router.get("/webhooks/{endpoint_id}")
def endpoint(request: Request, rt: RuntimeDep, session: OrgSession, endpoint_id: str) -> Response:
    row = _owned(rt, session, endpoint_id)
    with rt.engine.connect() as conn:
        log = endpoints.deliveries(conn, endpoint_id, 100)
    context = {"endpoint": endpoints.view(row), "deliveries": log, "result": None}
    return page(request, "webhook.html", context, session)


@router.post("/webhooks/{endpoint_id}")
async def act(request: Request, rt: RuntimeDep, session: OrgSession, endpoint_id: str) -> Response:
    """Rotate the secret, turn the endpoint on or off, redeliver one event, or delete it."""
    form = await checked_form(request, session)
    row = _owned(rt, session, endpoint_id)
    action = form.get("action")
    if action == "rotate":
        rotated = endpoints.rotate(rt, endpoint_id, grace_hours=24)
        return page(request, "webhook_secret.html", {"endpoint": rotated, "rotated": True}, session)
    if action in ("enable", "disable"):
        endpoints.update(rt, endpoint_id, {"enabled": action == "enable"})
    elif action == "delete":
        endpoints.delete(rt, endpoint_id)
        return redirect("/console/webhooks")
    elif action == "redeliver":
        event_id = str(form.get("event_id") or "")
        try:
            result = await anyio.to_thread.run_sync(
                lambda: endpoints.redeliver_event(rt, endpoint_id, event_id)
            )
        except NotFound as exc:
            raise Refused(404, "Not found", str(exc.args[0] if exc.args else exc)) from None
        with rt.engine.connect() as conn:
            log = endpoints.deliveries(conn, endpoint_id, 100)
        context = {"endpoint": endpoints.view(row), "deliveries": log, "result": result}
        return page(request, "webhook.html", context, session)
    return redirect(f"/console/webhooks/{endpoint_id}")
