"""What the console's pages show, read from the store as plain values for the templates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.agent import registry
from roster.directories import scim_base_url
from roster.settings import Settings
from roster.sources import source_type
from roster.status import next_run
from roster.store import repo
from roster.store.db import as_utc, utcnow
from roster.store.schema import directory_users, organizations, sync_log, sync_runs

METHODS = {
    "ldap": "LDAP direct",
    "active_directory": "Active Directory (LDAP direct)",
    "azure": "Microsoft Entra ID",
    "scim": "SCIM (pushed by the provider)",
}
STATES = {
    "linking": ("Not yet synced", "pending"),
    "linked": ("Active", "ok"),
    "inactive": ("Disabled", "off"),
    "invalid_credentials": ("Invalid credentials", "bad"),
    "deleting": ("Being deleted", "off"),
}


def method(row: Mapping[str, Any]) -> str:
    name = METHODS.get(row["type"], str(row["type"]))
    if (row["config"] or {}).get("connection") == "agent":
        return f"{name} through the on-prem agent"
    return name


def state(row: Mapping[str, Any]) -> dict[str, str]:
    label, tone = STATES.get(row["state"], (row["state"], "off"))
    return {"label": label, "tone": tone}


def next_sync(
    conn: Connection, row: Mapping[str, Any], window: float, now: datetime | None = None
) -> datetime | None:
    """When the daily full run is next due (see :func:`roster.status.next_run`)."""
    org = conn.execute(
        sa.select(organizations.c.timezone, organizations.c.daily_sync_time).where(
            organizations.c.id == row["organization_id"]
        )
    ).first()
    if org is None:
        return None
    return next_run(row, org.timezone, org.daily_sync_time, window, now or utcnow())


def summary(conn: Connection, row: Mapping[str, Any], window: float) -> dict[str, Any]:
    """One directory as the Directories page lists it."""
    return {
        "id": row["id"],
        "name": row["name"],
        "method": method(row),
        "state": state(row),
        "last_sync_at": row["last_sync_at"],
        "next_sync_at": next_sync(conn, row, window),
    }


def run_summary(run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    started, finished = as_utc(run["started_at"]), as_utc(run["finished_at"])
    seconds = (finished - started).total_seconds() if started and finished else None
    counts = {k: v for k, v in (run["counts"] or {}).items() if v}
    return {**dict(run), "seconds": seconds, "counts": counts}


def status(conn: Connection, row: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The Status box: state, access check, last run, next run, held runs, agents, SCIM."""
    runs = repo.list_runs(conn, row["id"], 20)
    last = next((r for r in runs if r["kind"] != "dry_run" and r["status"] != "running"), None)
    running = next((r for r in runs if r["status"] == "running"), None)
    held = [r for r in runs if r["status"] == "pending_approval"]
    out: dict[str, Any] = {
        **summary(conn, row, settings.schedule_spread_seconds),
        "check_at": row["last_check_at"],
        "check_ok": row["last_check_ok"],
        "check_error": row["last_check_error"],
        "last_run": run_summary(last),
        "running": run_summary(running),
        "held": held,
        "refresh_seconds": max(5, int(settings.access_check_seconds)),
        "agents": None,
        "scim_url": None,
    }
    if (row["config"] or {}).get("connection") == "agent":
        out["agents"] = registry.listing(conn, row["id"])
    if source_type(row["type"]).pushed:
        out["scim_url"] = scim_base_url(settings, row["id"])
    return out


def last_changes(conn: Connection, directory_id: str) -> dict[str, Any]:
    """The guide's two lists, from the last run that applied: "New accounts since last sync" and
    "Deleted from directory", with names and e-mail addresses."""
    run = conn.execute(
        sa.select(sync_runs.c.id, sync_runs.c.started_at)
        .where(
            sync_runs.c.directory_id == directory_id,
            sync_runs.c.status == "succeeded",
            sync_runs.c.kind != "dry_run",
        )
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    ).first()
    if run is None:
        return {"run_id": None, "new": [], "deleted": []}
    return {"run_id": run.id, **people_of(conn, run.id, 200)}


def people_of(conn: Connection, run_id: str, most: int) -> dict[str, list[dict[str, Any]]]:
    """Users a run created, and users it found gone from the directory (up to ``most`` each)."""
    lg = sync_log
    lists: dict[str, list[dict[str, Any]]] = {}
    for key, change in (("new", "user_created"), ("deleted", "user_removed")):
        rows = conn.execute(
            sa.select(lg.c.object_id, lg.c.external_id, lg.c.detail)
            .where(lg.c.run_id == run_id, lg.c.change == change)
            .order_by(lg.c.id)
            .limit(most)
        ).all()
        lists[key] = _named(conn, [(r.object_id, r.external_id, json.loads(r.detail)) for r in rows])
    return lists


def _named(
    conn: Connection, entries: list[tuple[str | None, str | None, dict[str, Any]]]
) -> list[dict[str, Any]]:
    ids = [oid for oid, _, _ in entries if oid]
    known: dict[str, Any] = {}
    for start in range(0, len(ids), 500):
        u = directory_users
        for r in conn.execute(
            sa.select(u.c.id, u.c.name, u.c.email).where(u.c.id.in_(ids[start : start + 500]))
        ).all():
            known[r.id] = r
    out = []
    for oid, ext, detail in entries:
        row = known.get(oid or "")
        out.append(
            {
                "id": oid,
                "idp_id": ext,
                "name": detail.get("name") or (row.name if row else None),
                "email": detail.get("email") or (row.email if row else None),
            }
        )
    return out
