"""Webhook endpoints: create (secret shown once), change, rotate, delete, delivery log, redelivery."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.events import feed
from roster.events.webhooks import Deliverer, check_url, record
from roster.ids import new_id
from roster.runtime import Runtime
from roster.store.db import iso, utcnow
from roster.store.repo import NotFound, get_organization
from roster.store.schema import events, webhook_deliveries, webhook_endpoints

EVENT_TYPES = (
    "dsync.activated",
    "dsync.deleted",
    "dsync.user.created",
    "dsync.user.updated",
    "dsync.user.deleted",
    "dsync.group.created",
    "dsync.group.updated",
    "dsync.group.deleted",
    "dsync.group.user_added",
    "dsync.group.user_removed",
)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def view(row: Any, secret: str | None = None) -> dict[str, Any]:
    out = {
        "object": "webhook_endpoint",
        "id": row["id"],
        "organization_id": row["organization_id"],
        "url": row["url"],
        "events": row["events"],
        "enabled": bool(row["enabled"]),
        "failing": bool(row["failing"]),
        "cursor": row["cursor"],
        "next_attempt_at": iso(row["next_attempt_at"]),
        "created_at": iso(row["created_at"]),
    }
    if secret is not None:
        out["secret"] = secret  # shown once
    return out


def get(conn: Connection, endpoint_id: str) -> dict[str, Any]:
    row = (
        conn.execute(sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id!r} not found")
    return dict(row)


def _types(types: list[str] | None) -> list[str] | None:
    if not types:
        return None
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"events: {unknown[0]!r} is not an event type; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(types))


def create(rt: Runtime, org: str, url: str, types: list[str] | None, enabled: bool = True) -> dict[str, Any]:
    check_url(url, rt.settings.webhook_allow_private)
    secret = new_secret()
    now = utcnow()
    with rt.engine.begin() as conn:
        get_organization(conn, org)
        newest = feed.newest_id(conn, [events.c.organization_id == org])  # it starts from now
        row = {
            "id": new_id("webhook"),
            "organization_id": org,
            "url": url,
            "events": _types(types),
            "enabled": enabled,
            "secret": rt.box.seal(secret),
            "previous_secret": None,
            "previous_until": None,
            "cursor": newest,
            "head_since": None,
            "head_attempts": 0,
            "next_attempt_at": None,
            "consecutive_failures": 0,
            "failing": False,
            "lease_until": None,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(sa.insert(webhook_endpoints).values(row))
    return view(row, secret)


def update(rt: Runtime, endpoint_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": utcnow()}
    if "url" in changes:
        values["url"] = check_url(changes["url"], rt.settings.webhook_allow_private)
    if "events" in changes:
        values["events"] = _types(changes["events"])
    if "enabled" in changes:
        values["enabled"] = bool(changes["enabled"])
    with rt.engine.begin() as conn:
        get(conn, endpoint_id)
        conn.execute(
            sa.update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(**values)
        )
        return view(get(conn, endpoint_id))


def rotate(rt: Runtime, endpoint_id: str, grace_hours: float) -> dict[str, Any]:
    secret = new_secret()
    with rt.engine.begin() as conn:
        row = get(conn, endpoint_id)
        conn.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(
                secret=rt.box.seal(secret),
                previous_secret=row["secret"],
                previous_until=utcnow() + timedelta(hours=grace_hours),
                updated_at=utcnow(),
            )
        )
        return view(get(conn, endpoint_id), secret)


def delete(rt: Runtime, endpoint_id: str) -> None:
    with rt.engine.begin() as conn:
        get(conn, endpoint_id)
        conn.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id))
        conn.execute(sa.delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))


def deliveries(
    conn: Connection, endpoint_id: str, limit: int = 100, event_id: str | None = None
) -> list[dict[str, Any]]:
    d = webhook_deliveries
    q = sa.select(d).where(d.c.endpoint_id == endpoint_id).order_by(d.c.id.desc()).limit(limit)
    if event_id:
        q = q.where(d.c.event_id == event_id)
    return [
        {
            "id": r["id"],
            "event_id": r["event_id"],
            "attempt": r["attempt"],
            "outcome": r["outcome"],
            "status_code": r["status_code"],
            "latency_ms": r["latency_ms"],
            "error": r["error"],
            "manual": bool(r["manual"]),
            "at": iso(r["created_at"]),
        }
        for r in conn.execute(q).mappings()
    ]


def redeliver_event(rt: Runtime, endpoint_id: str, event_id: str) -> dict[str, Any]:
    """Send one event again now (a manual attempt, logged), whatever the cursor says."""
    with rt.engine.connect() as conn:
        endpoint = get(conn, endpoint_id)
        event = feed.find(conn, [events.c.organization_id == endpoint["organization_id"]], event_id)
    if event is None:
        raise NotFound(f"event {event_id!r} not found")
    status, error, latency, _ = Deliverer(rt).post(endpoint, event)
    outcome = "delivered" if status is not None and 200 <= status < 300 else "failed"
    with rt.engine.begin() as conn:
        record(conn, endpoint_id, event_id, 1, outcome, status, latency, error, manual=True)
    return {"event_id": event_id, "outcome": outcome, "status_code": status, "error": error}


def redeliver_since(rt: Runtime, endpoint_id: str, event_id: str) -> dict[str, Any]:
    """Replay every event from ``event_id`` on, in order (moves the endpoint's cursor back).

    It also ends the lease of a deliverer working on the endpoint now: that deliverer then
    cannot write its batch's cursor over the replay (its writes are conditional on its lease)."""
    with rt.engine.begin() as conn:
        endpoint = get(conn, endpoint_id)
        before = feed.previous_id(conn, [events.c.organization_id == endpoint["organization_id"]], event_id)
        conn.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(
                cursor=before,
                head_since=None,
                head_attempts=0,
                next_attempt_at=None,
                lease_until=None,
                updated_at=utcnow(),
            )
        )
    return {"replaying_from": event_id}
