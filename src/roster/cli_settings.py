"""``roster settings``: an organization's schedule, deletion guard, alerts and sign-in settings
(``show``, ``set``), and the server's own settings (``env``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
import sqlalchemy as sa

from roster.accounts import lifecycle
from roster.cli_support import emit, handle_errors, json_option, runtime
from roster.sso.redirects import check_redirect_uris
from roster.store import repo
from roster.store.schema import organizations


def _lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


@click.group()
def org_settings() -> None:
    """Organization settings (schedule, deletion guard, alerts, sign-in), and `env`: the server's."""


SHOWN = (
    "timezone",
    "daily_sync_time",
    "incremental_minutes",
    "guard_max_share",
    "guard_min_count",
    "group_removal_policy",
    "notify_only_selected",
    "sso_redirect_uris",
)


def _organization_settings(conn: Any, org_id: str) -> dict[str, Any]:
    row = repo.get_organization(conn, org_id)
    data = {"organization_id": org_id, **{k: row[k] for k in SHOWN}}
    data["alert_recipients"] = [p["email"] for p in lifecycle.recipients(conn, org_id)]
    data["sso_redirect_uris"] = data["sso_redirect_uris"] or []
    return data


@org_settings.command("env")
@json_option
@handle_errors
def settings_env(as_json: bool) -> None:
    """Every ROSTER_* setting: its value in effect (secrets hidden), default and meaning."""
    from roster.settings import get_settings
    from roster.settings_doc import rows

    settings = get_settings()
    found = []
    for row in rows():
        name = row["variable"].removeprefix("ROSTER_").lower()
        value = getattr(settings, name)
        if name == "database_url":
            value = sa.engine.make_url(value).render_as_string(hide_password=True)
        hidden = value is not None and any(w in name for w in ("secret", "password", "key"))
        found.append({**row, "value": "(set, hidden)" if hidden and name != "key_file" else value})
    emit(
        as_json,
        found,
        lambda: _lines(f"{r['variable']}={_shown(r['value'])}  # {r['description']}" for r in found),
    )


@org_settings.command("show")
@click.argument("org_id")
@json_option
@handle_errors
def settings_show(org_id: str, as_json: bool) -> None:
    """The organization's schedule, deletion guard, alert recipients and sign-in settings."""
    with runtime().engine.connect() as conn:
        data = _organization_settings(conn, org_id)
    emit(as_json, data, lambda: _lines(f"{k:22} {_shown(v)}" for k, v in data.items()))


def _shown(value: Any) -> str:
    if value is None:
        return "(default)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


@org_settings.command("set")
@click.argument("org_id")
@click.option("--daily-sync-time", default=None, help="HH:MM, local time of the daily full sync.")
@click.option("--timezone", default=None, help="e.g. Europe/Prague: the daily sync runs in it.")
@click.option(
    "--incremental-minutes",
    type=click.IntRange(0, 1440),
    default=None,
    help="Incremental runs every N minutes (0: off).",
)
@click.option("--guard-max-share", type=click.FloatRange(0, 1, min_open=True), default=None)
@click.option("--guard-min-count", type=click.IntRange(1, 10**9), default=None)
@click.option("--group-removal-policy", type=click.Choice(["remove", "keep_inactive"]), default=None)
@click.option("--alert-only-selected/--alert-all-admins", default=None)
@click.option(
    "--alert-recipient",
    "recipients",
    multiple=True,
    help="An account to alert: its e-mail address, id or (unique) name (repeatable).",
)
@click.option(
    "--sso-redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Where single sign-on may send the browser back to (repeatable; replaces the list).",
)
@json_option
@handle_errors
def settings_set(
    org_id: str,
    daily_sync_time: str | None,
    timezone: str | None,
    incremental_minutes: int | None,
    guard_max_share: float | None,
    guard_min_count: int | None,
    group_removal_policy: str | None,
    alert_only_selected: bool | None,
    recipients: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change the organization's settings (only those given)."""
    warnings: list[str] = []
    uris = check_redirect_uris(list(redirect_uris)) if redirect_uris else None
    schedule = _schedule(daily_sync_time, timezone, incremental_minutes, guard_max_share, guard_min_count)
    with runtime().engine.begin() as conn:
        row = repo.get_organization(conn, org_id)
        if schedule:
            conn.execute(sa.update(organizations).where(organizations.c.id == org_id).values(**schedule))
        if uris is not None:
            conn.execute(
                sa.update(organizations).where(organizations.c.id == org_id).values(sso_redirect_uris=uris)
            )
        if group_removal_policy:
            conn.execute(
                sa.update(organizations)
                .where(organizations.c.id == org_id)
                .values(group_removal_policy=group_removal_policy)
            )
        if alert_only_selected is not None or recipients:
            only = row["notify_only_selected"] if alert_only_selected is None else alert_only_selected
            warnings = lifecycle.set_alerts(conn, org_id, bool(only), list(recipients))
        data = {**_organization_settings(conn, org_id), "warnings": warnings}
    who = data["alert_recipients"]
    emit(
        as_json,
        data,
        lambda: _lines([*(f"warning: {w}" for w in warnings), f"alerts go to: {', '.join(who) or 'nobody'}"]),
    )


def _schedule(
    daily: str | None, timezone: str | None, minutes: int | None, share: float | None, count: int | None
) -> dict[str, Any]:
    from roster.sync.schedule import parse_time, zone

    values: dict[str, Any] = {}
    if daily is not None:
        parse_time(daily)
        values["daily_sync_time"] = daily
    if timezone is not None:
        zone(timezone)
        values["timezone"] = timezone
    if minutes is not None:
        values["incremental_minutes"] = minutes or None
    if share is not None:
        values["guard_max_share"] = share
    if count is not None:
        values["guard_min_count"] = count
    return values
