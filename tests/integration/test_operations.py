"""Schedules with an injected clock, /metrics, /readyz and roster status."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

from roster.api.app import create_app
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import jobs, organizations
from roster.sync.schedule import Schedules, spread
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app


def test_daily_and_incremental_schedules(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    org = new_org(rt)
    at = (datetime.now(UTC) + timedelta(hours=12)).astimezone(ZoneInfo("Europe/Prague")).strftime("%H:%M")
    with rt.engine.begin() as conn:  # the daily time half a day away: the test never straddles it
        conn.execute(
            sa.update(organizations)
            .where(organizations.c.id == org)
            .values(timezone="Europe/Prague", daily_sync_time=at, incremental_minutes=5)
        )
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok  # a full run now
    ran = datetime.now(UTC)
    clock = [ran + timedelta(minutes=1)]
    schedules = Schedules(rt, clock=lambda: clock[0])
    assert schedules.tick() == []  # nothing due a minute later
    clock[0] = ran + timedelta(minutes=6)
    assert schedules.tick() == [(d, "incremental")]
    assert schedules.tick() == [(d, "incremental")]  # still due: coalesced into the queued job
    with rt.engine.connect() as conn:
        queued = conn.execute(sa.select(jobs.c.args).where(jobs.c.status == "queued")).scalars().all()
    assert len(queued) == 1 and queued[0]["trigger"] == "schedule"
    clock[0] = ran + timedelta(hours=13)  # past the daily time in Prague (and its spread)
    assert (d, "daily") in schedules.tick()


def test_metrics_readyz_and_status(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    tree.add_user("ada")
    org = new_org(rt)
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    with rt.engine.begin() as conn:
        _, admin = repo.create_api_key(conn, None, "prometheus")
    with serve_app(create_app(rt)) as url:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
        assert httpx.get(f"{url}/metrics").status_code == 401
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {admin}"}).text
        assert 'roster_sync_runs{status="succeeded"} 1.0' in metrics
        assert f'roster_sync_last_run_seconds{{directory="{d}"}}' in metrics
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
    env = {
        **os.environ,
        "ROSTER_DATABASE_URL": rt.settings.database_url,
        "ROSTER_SECRET_KEY": rt.settings.secret_key or "",
    }
    result = subprocess.run(
        [roster, "status", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    (row,) = [r for r in json.loads(result.stdout) if r["directory"] == d]
    assert row["state"] == "linked" and row["last_run"] == "succeeded" and row["pending_approvals"] == 0
    offset = spread(d, rt.settings.schedule_spread_seconds)  # 00:00 plus the directory's own offset
    after = datetime.fromisoformat(row["next_scheduled_run"]) - offset
    assert offset > timedelta(0) and after.time() == time(0, 0)
    with rt.engine.connect() as conn:
        assert repo.get_directory(conn, d)["state"] == "linked"


def test_access_checks_honour_the_first_delay_and_the_interval(
    sqlite_url: str, tmp_path: object, slapd: Slapd, tree: Tree
) -> None:
    from pathlib import Path

    from roster.sync.scheduler import AccessChecks
    from tests.conftest import make_runtime

    rt = make_runtime(sqlite_url, Path(str(tmp_path)), access_check_delay_seconds=60, access_check_seconds=60)
    tree.add_user("ada")
    d = ldap_directory(rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    now = [datetime.now(UTC)]
    checks = AccessChecks(rt, clock=lambda: now[0])
    other_worker = AccessChecks(rt, clock=lambda: now[0])
    assert checks.tick() == []  # within the first minute after start-up
    now[0] += timedelta(seconds=61)
    assert checks.tick() == [d]
    assert other_worker.tick() == []  # claimed in the database: checked once per interval
    now[0] += timedelta(seconds=30)
    assert checks.tick() == []  # the interval has not passed
    now[0] += timedelta(seconds=31)
    assert other_worker.tick() == [d]
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, d)
    assert row["last_check_ok"] is True and row["last_check_at"] is not None
    rt.engine.dispose()


def test_status_names_no_next_run_for_a_directory_that_is_not_scheduled(rt: Runtime) -> None:
    """A pushed (SCIM) directory has no daily run; a pulled one's is at its offset in the window."""
    from roster.directories import DirectorySpec, create_directory
    from roster.status import status_rows
    from roster.store.db import utcnow

    org = new_org(rt)
    scim = create_directory(rt, DirectorySpec(org, "SCIM", "scim", {"provider": "okta"}))["id"]
    config = {"url": "ldap://127.0.0.1:9", "bind_dn": "cn=r", "search_paths": ["OU=P, DC=x, DC=test"]}
    ldap = create_directory(rt, DirectorySpec(org, "LDAP", "ldap", config, "pw"))["id"]
    with rt.engine.connect() as conn:
        rows = {r["directory"]: r for r in status_rows(conn, 600, utcnow())}
    assert rows[scim]["next_scheduled_run"] is None
    assert rows[ldap]["next_scheduled_run"] is None  # not linked yet: its first run is an explicit one
    with rt.engine.begin() as conn:
        repo.update_directory(conn, ldap, state="linked")
    with rt.engine.connect() as conn:
        rows = {r["directory"]: r for r in status_rows(conn, 600, utcnow())}
    due = datetime.fromisoformat(rows[ldap]["next_scheduled_run"]) - spread(ldap, 600)
    assert due.time() == time(0, 0)
