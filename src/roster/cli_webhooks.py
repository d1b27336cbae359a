"""``roster webhook ...``: endpoints, their delivery log, redelivery."""

from __future__ import annotations

import click
import sqlalchemy as sa

from roster.cli_support import emit, handle_errors, json_option, runtime
from roster.events import endpoints
from roster.events.webhooks import Deliverer
from roster.store.schema import webhook_endpoints


@click.group()
def webhook() -> None:
    """Webhook endpoints (signed like WorkOS's, delivered in order, retried)."""


@webhook.command("create")
@click.argument("org_id")
@click.argument("url")
@click.option("--event", "types", multiple=True, help="An event type it wants (repeatable; default all).")
@json_option
@handle_errors
def create(org_id: str, url: str, types: tuple[str, ...], as_json: bool) -> None:
    """Add a webhook endpoint; its signing secret is shown once."""
    row = endpoints.create(runtime(), org_id, url, list(types) or None)
    emit(as_json, row, lambda: click.echo(f"{row['id']}\nsecret (shown once): {row['secret']}"))


@webhook.command("list")
@click.argument("org_id")
@json_option
@handle_errors
def list_(org_id: str, as_json: bool) -> None:
    """The organization's webhook endpoints."""
    e = webhook_endpoints
    with runtime().engine.connect() as conn:
        rows = [
            endpoints.view(r)
            for r in conn.execute(
                sa.select(e).where(e.c.organization_id == org_id).order_by(e.c.id)
            ).mappings()
        ]

    def text() -> None:
        for r in rows:
            state = "failing" if r["failing"] else ("enabled" if r["enabled"] else "disabled")
            click.echo(f"{r['id']}  {state:8} {r['url']}  {','.join(r['events'] or ['all'])}")

    emit(as_json, rows, text)


@webhook.command("set")
@click.argument("endpoint_id")
@click.option("--url", default=None)
@click.option("--event", "types", multiple=True)
@click.option("--enable/--disable", "enabled", default=None)
@json_option
@handle_errors
def set_(
    endpoint_id: str, url: str | None, types: tuple[str, ...], enabled: bool | None, as_json: bool
) -> None:
    """Change an endpoint's URL, events or enabled state."""
    changes: dict[str, object] = {}
    if url:
        changes["url"] = url
    if types:
        changes["events"] = list(types)
    if enabled is not None:
        changes["enabled"] = enabled
    row = endpoints.update(runtime(), endpoint_id, changes)
    emit(as_json, row, lambda: click.echo(f"{row['id']} updated"))


@webhook.command("rotate-secret")
@click.argument("endpoint_id")
@click.option(
    "--grace-hours", default=24.0, show_default=True, help="The old secret keeps signing this long."
)
@json_option
@handle_errors
def rotate(endpoint_id: str, grace_hours: float, as_json: bool) -> None:
    """A new signing secret (shown once); the old one still signs during the grace period."""
    row = endpoints.rotate(runtime(), endpoint_id, grace_hours)
    emit(as_json, row, lambda: click.echo(f"new secret (shown once): {row['secret']}"))


@webhook.command("delete")
@click.argument("endpoint_id")
@json_option
@handle_errors
def delete(endpoint_id: str, as_json: bool) -> None:
    """Delete an endpoint and its delivery history."""
    endpoints.delete(runtime(), endpoint_id)
    emit(as_json, {"id": endpoint_id, "deleted": True}, lambda: click.echo(f"deleted {endpoint_id}"))


@webhook.command("deliveries")
@click.argument("endpoint_id")
@click.option("--event", "event_id", default=None)
@click.option("--limit", default=50, show_default=True)
@json_option
@handle_errors
def deliveries(endpoint_id: str, event_id: str | None, limit: int, as_json: bool) -> None:
    """An endpoint's recent delivery attempts."""
    with runtime().engine.connect() as conn:
        rows = endpoints.deliveries(conn, endpoint_id, limit, event_id)

    def text() -> None:
        for d in rows:
            click.echo(
                f"{d['at']}  {d['event_id']}  #{d['attempt']} {d['outcome']:9} "
                f"{d['status_code'] or '-'} {d['latency_ms']} ms {d['error'] or ''}"
            )

    emit(as_json, rows, text)


@webhook.command("redeliver")
@click.argument("endpoint_id")
@click.option("--event", "event_id", default=None, help="Send this one event again now.")
@click.option("--since", default=None, help="Replay every event from this id on, in order.")
@json_option
@handle_errors
def redeliver(endpoint_id: str, event_id: str | None, since: str | None, as_json: bool) -> None:
    """Deliver again: one event (--event) or every event since one (--since)."""
    if bool(event_id) == bool(since):
        raise ValueError("--event, --since: give exactly one")
    rt = runtime()
    if event_id:
        result = endpoints.redeliver_event(rt, endpoint_id, event_id)
    else:
        assert since is not None
        result = endpoints.redeliver_since(rt, endpoint_id, since)
    emit(as_json, result, lambda: click.echo(str(result)))


@webhook.command("deliver")
@json_option
@handle_errors
def deliver_now(as_json: bool) -> None:
    """Run one delivery round now (roster serve does this continuously)."""
    delivered = Deliverer(runtime()).run_once()
    emit(as_json, {"delivered": delivered}, lambda: click.echo(f"delivered {delivered}"))
