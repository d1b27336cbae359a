"""Webhook endpoints under /api/v1."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from roster.api.auth import PrincipalDep, RuntimeDep, check_org
from roster.api.models import Patch, Strict
from roster.events import endpoints
from roster.store import repo

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


class EndpointIn(Strict):
    url: str = Field(max_length=2000)
    events: list[str] | None = Field(default=None, description="Event types it wants; omit for all")
    enabled: bool = True


class EndpointPatch(Patch):
    NULLABLE = frozenset(["events"])
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = None
    enabled: bool | None = None


class RotateIn(Strict):
    grace_hours: float = Field(
        default=24.0, ge=0, le=720, description="The old secret keeps signing this long"
    )


class RedeliverIn(Strict):
    event_id: str | None = Field(default=None, description="Send this one event again now")
    since: str | None = Field(default=None, description="Replay every event from this id on, in order")


def _owned(rt: Any, who: Any, endpoint_id: str) -> dict[str, Any]:
    with rt.engine.connect() as conn:
        row = endpoints.get(conn, endpoint_id)
    check_org(who, row["organization_id"], "webhook endpoint", endpoint_id)
    return row


@router.post("/organizations/{org_id}/webhooks", status_code=201)
def create(org_id: str, body: EndpointIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Add a webhook endpoint (https or http URL on a public address). The signing secret is shown
    once."""
    check_org(who, org_id, "organization", org_id)
    return endpoints.create(rt, org_id, body.url, body.events, body.enabled)


@router.get("/organizations/{org_id}/webhooks")
def list_(org_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """The organization's webhook endpoints with their delivery state."""
    check_org(who, org_id, "organization", org_id)
    import sqlalchemy as sa

    from roster.store.schema import webhook_endpoints as e

    with rt.engine.connect() as conn:
        repo.get_organization(conn, org_id)
        rows = conn.execute(sa.select(e).where(e.c.organization_id == org_id).order_by(e.c.id)).mappings()
        return {"object": "list", "data": [endpoints.view(r) for r in rows]}


@router.get("/webhooks/{endpoint_id}")
def get(endpoint_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """One webhook endpoint with its cursor, backlog and last failure."""
    return endpoints.view(_owned(rt, who, endpoint_id))


@router.patch("/webhooks/{endpoint_id}")
def update(endpoint_id: str, body: EndpointPatch, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Change an endpoint's URL, events or enabled state."""
    _owned(rt, who, endpoint_id)
    return endpoints.update(rt, endpoint_id, body.model_dump(exclude_unset=True))


@router.post("/webhooks/{endpoint_id}/rotate_secret")
def rotate(
    endpoint_id: str, rt: RuntimeDep, who: PrincipalDep, body: RotateIn | None = None
) -> dict[str, Any]:
    """A new signing secret (shown once); the old one still signs (WorkOS-Signature-Previous) for the
    grace period."""
    _owned(rt, who, endpoint_id)
    return endpoints.rotate(rt, endpoint_id, (body or RotateIn()).grace_hours)


@router.delete("/webhooks/{endpoint_id}", status_code=204)
def delete(endpoint_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Delete a webhook endpoint and its delivery history."""
    _owned(rt, who, endpoint_id)
    endpoints.delete(rt, endpoint_id)
    return Response(status_code=204)


@router.get("/webhooks/{endpoint_id}/deliveries")
def deliveries(
    endpoint_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    event_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """An endpoint's recent delivery attempts with their status and latency."""
    _owned(rt, who, endpoint_id)
    with rt.engine.connect() as conn:
        return {"object": "list", "data": endpoints.deliveries(conn, endpoint_id, limit, event_id)}


@router.post("/webhooks/{endpoint_id}/redeliver")
def redeliver(endpoint_id: str, body: RedeliverIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Deliver again: one event now (`event_id`), or every event since a time (`since`: the
    endpoint's cursor moves back)."""
    _owned(rt, who, endpoint_id)
    if bool(body.event_id) == bool(body.since):
        raise ValueError("event_id, since: give exactly one")
    if body.event_id:
        return endpoints.redeliver_event(rt, endpoint_id, body.event_id)
    assert body.since is not None
    return endpoints.redeliver_since(rt, endpoint_id, body.since)
