"""What ``roster status`` reports, one row per directory, in a fixed number of queries however
many directories there are (a fleet has thousands; the webhook backlog is one query per endpoint)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.events.webhooks import backlog
from roster.sources import pulled_types
from roster.store import repo
from roster.store.db import iso
from roster.store.schema import organizations, sync_runs, webhook_endpoints
from roster.sync.schedule import SCHEDULED_STATES, next_due, spread


def status_rows(conn: Connection, window: float, now: datetime) -> list[dict[str, Any]]:
    """State, access, last check, last run, next due run (at the directory's offset in the spread
    ``window``), held runs and the organization's webhook backlog, per directory."""
    orgs = {o["id"]: o for o in conn.execute(sa.select(organizations)).mappings()}
    last, held = _last_runs(conn), _held(conn)
    backlogs: Counter[str] = Counter()
    for endpoint in conn.execute(sa.select(webhook_endpoints)).mappings():
        backlogs[endpoint["organization_id"]] += backlog(conn, endpoint)
    rows = []
    for d in repo.list_directories(conn):
        org, run = orgs[d["organization_id"]], last.get(d["id"])
        rows.append(
            {
                "directory": d["id"],
                "name": d["name"],
                "state": d["state"],
                "access": access(d),
                "failing_since": iso(
                    d["lost_alerted_at"] or (d["last_check_at"] if not d["last_check_ok"] else None)
                ),
                "last_check": iso(d["last_check_at"]),
                "last_check_ok": d["last_check_ok"],
                "last_check_error": d["last_check_error"],
                "last_run": run["status"] if run else None,
                "last_run_at": iso(run["started_at"]) if run else None,
                "next_scheduled_run": iso(next_run(d, org["timezone"], org["daily_sync_time"], window, now)),
                "pending_approvals": held[d["id"]],
                "webhook_backlog": backlogs[d["organization_id"]],
            }
        )
    return rows


def organization_health(conn: Connection) -> dict[str, dict[str, int]]:
    """Per organization: how many directories it has and how many need attention (unreachable,
    the last run failed, or a run waits for approval)."""
    last, held = _last_runs(conn), _held(conn)
    health: dict[str, dict[str, int]] = {}
    for d in repo.list_directories(conn):
        counts = health.setdefault(d["organization_id"], {"directories": 0, "attention": 0})
        counts["directories"] += 1
        run = last.get(d["id"])
        if access(d) == "unreachable" or (run is not None and run["status"] == "failed") or held[d["id"]]:
            counts["attention"] += 1
    return health


def _last_runs(conn: Connection) -> dict[str, Any]:
    """Each directory's newest run that is not a dry run (run ids sort by start)."""
    r = sync_runs
    newest = sa.select(sa.func.max(r.c.id)).where(r.c.kind != "dry_run").group_by(r.c.directory_id)
    rows = conn.execute(sa.select(r.c.directory_id, r.c.status, r.c.started_at).where(r.c.id.in_(newest)))
    return {row["directory_id"]: row for row in rows.mappings()}


def _held(conn: Connection) -> Counter[str]:
    """Runs waiting for an admin's approval, per directory."""
    return Counter(conn.execute(sa.select(sync_runs.c.directory_id).where(repo.HELD)).scalars())


def next_run(directory: Mapping[str, Any], tz: str, at: str, window: float, now: datetime) -> datetime | None:
    """When the directory's next daily run is due (at its offset in the spread ``window``); None
    when none is scheduled: the schedules' own rule (a pulled directory, linked or waiting for new
    credentials; not a pushed one, nor one not linked yet or disabled)."""
    if directory["type"] not in pulled_types() or directory["state"] not in SCHEDULED_STATES:
        return None
    return next_due(now, tz, at, spread(directory["id"], window))


def access(directory: dict[str, Any]) -> str:
    """What the last access check (or a run that could not reach the directory) found."""
    if directory["last_check_at"] is None:
        return "never checked"
    return "ok" if directory["last_check_ok"] else "unreachable"
