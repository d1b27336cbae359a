"""``scripts/bench fleet``: many organizations due at once, synced by N ``roster worker`` processes
sharing one PostgreSQL database.

One slapd serves every organization's directory (one OU each, ``--users`` people in it): an
LDAP server per tenant would not fit this machine, and one server is the harder case for the
workers (they all read from it). Every organization's daily sync is set to the same minute; the
workers' own schedulers enqueue the runs (spread over ``ROSTER_SCHEDULE_SPREAD_SECONDS``), and
the bench reports the time until every directory has synced, syncs per minute, each directory's
wait from its due time to its run's start (p50, p99, max), jobs that had to be run again, the
most database connections seen, and each worker's peak resident memory. ``--big N`` adds one
directory of N users due with the others (does it starve, do the small ones wait for it?).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from roster.bench.sync import cli, fresh_postgres_schema
from roster.demo.slapd import Slapd
from roster.directories import DirectorySpec, create_directory
from roster.runtime import open_runtime
from roster.settings import Settings
from roster.store import repo
from roster.store.db import as_utc, utcnow
from roster.store.schema import directories, jobs, organizations, sync_runs
from roster.sync.schedule import spread

ROSTER = str(Path(sys.executable).parent / "roster")
SUFFIX = "dc=example,dc=com"


def write_ldif(path: Path, orgs: int, users: int, big: int) -> list[tuple[str, int]]:
    """One OU per organization with its people; returns (OU name, size) per directory."""
    sizes = [(f"org{n:04d}", users) for n in range(orgs)] + ([("big", big)] if big else [])
    with path.open("w") as fh:
        fh.write(
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n"
        )
        for ou, size in sizes:
            fh.write(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
            for i in range(size):
                uid = f"{ou}u{i}"
                fh.write(
                    f"dn: uid={uid},ou={ou},{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                    f"cn: Person {i}\nsn: {ou}\nmail: {uid}@{ou}.example\n\n"
                )
    return sizes


def create_fleet(
    url: str, key: str, server: Slapd, sizes: list[tuple[str, int]], due: datetime, window: float
) -> dict[str, str]:
    """Organizations and their directories, linked, synced yesterday and due daily at ``due``
    (UTC, spread over ``window`` seconds); id -> OU."""
    at = due.strftime("%H:%M")
    rt = open_runtime(Settings(database_url=url, secret_key=key))
    made: dict[str, str] = {}
    try:
        for ou, _ in sizes:
            with rt.engine.begin() as conn:
                org_id = repo.create_organization(conn, f"Org {ou}", f"{ou}.example")["id"]
                conn.execute(
                    sa.update(organizations)
                    .where(organizations.c.id == org_id)
                    .values(daily_sync_time=at, timezone="UTC")
                )
            settings = {
                "url": server.url,
                "bind_dn": server.admin_dn,
                "search_paths": (f"OU={ou}, DC=example, DC=com",),
            }
            row = create_directory(rt, DirectorySpec(org_id, ou, "ldap", settings, server.admin_password))
            made[row["id"]] = ou
        with rt.engine.begin() as conn:  # existing customers: linked, last synced in full yesterday
            conn.execute(sa.update(directories).values(state="linked"))
            for directory_id in made:
                run = repo.start_run(conn, repo.get_directory(conn, directory_id), "schedule", "full")
                repo.finish_run(conn, run["id"], "succeeded", {})
            yesterday = due - timedelta(days=1) + timedelta(seconds=window + 1)  # after yesterday's due
            conn.execute(sa.update(sync_runs).values(started_at=yesterday, finished_at=yesterday))
    finally:
        rt.engine.dispose()
    return made


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_fleet(
    url: str, env: dict[str, str], made: dict[str, str], workers: int, due: datetime, limit: float
) -> dict[str, Any]:
    engine = sa.create_engine(url)
    today = (sync_runs.c.status == "succeeded", sync_runs.c.kind == "full", sync_runs.c.started_at >= due)
    procs = [
        subprocess.Popen([ROSTER, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    started, connections, peaks = time.monotonic(), 0, [0.0] * workers
    try:
        while time.monotonic() - started < limit:
            with engine.connect() as conn:
                done = conn.execute(
                    sa.select(sa.func.count(sa.distinct(sync_runs.c.directory_id))).where(*today)
                ).scalar()
                connections = max(
                    connections,
                    int(conn.execute(sa.text("select count(*) from pg_stat_activity")).scalar() or 0),
                )
            peaks = [max(p, peak_rss_mb(proc.pid)) for p, proc in zip(peaks, procs, strict=True)]
            if done == len(made):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(sync_runs.c.directory_id, sa.func.min(sync_runs.c.started_at))
            .where(*today)
            .group_by(sync_runs.c.directory_id)
        ).all()
        again = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(jobs.c.attempts > 1)).scalar()
        twice = conn.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(sync_runs.c.directory_id)
                .where(*today)
                .group_by(sync_runs.c.directory_id)
                .having(sa.func.count() > 1)
                .subquery()
            )
        ).scalar()
    engine.dispose()
    by_directory = {
        d: max(0.0, ((as_utc(first) or due) - (due + spread(d, env_spread(env)))).total_seconds())
        for d, first in runs
    }
    waits = sorted(w for d, w in by_directory.items() if made[d] != "big")  # the big one apart
    big = next((d for d, ou in made.items() if ou == "big"), None)
    return {
        "workers": workers,
        "directories": len(made),
        "synced": len(runs),
        "seconds_until_all_synced": round(elapsed, 1),
        "syncs_per_minute": round(len(runs) / elapsed * 60, 1) if elapsed else None,
        "wait_p50_s": round(statistics.median(waits), 1) if waits else None,
        "wait_p99_s": round(waits[int(len(waits) * 0.99) - 1], 1) if waits else None,
        "wait_max_s": round(waits[-1], 1) if waits else None,
        "jobs_run_again": again,
        "directories_synced_twice": twice,
        "max_db_connections": connections,
        "peak_rss_mb_per_worker": [round(p) for p in peaks],
        "big_directory_wait_s": round(by_directory[big], 1) if big in by_directory else None,
    }


def env_spread(env: dict[str, str]) -> float:
    return float(env.get("ROSTER_SCHEDULE_SPREAD_SECONDS", "0"))


def run(
    postgres: str, orgs: int, users: int, workers: list[int], big: int = 0, spread_seconds: float = 60.0
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="roster-fleet-"))
    server = Slapd(folder / "slapd")
    server.configure()
    loaded = time.perf_counter()
    sizes = write_ldif(folder / "fleet.ldif", orgs, users, big)
    server.load(folder / "fleet.ldif")
    server.start()
    results: dict[str, Any] = {
        "orgs": orgs,
        "users_per_directory": users,
        "big_directory_users": big,
        "load_seconds": round(time.perf_counter() - loaded, 1),
        "note": "one slapd serves every organization (one OU each): a server per tenant is too heavy here",
        "runs": [],
    }
    try:
        for n in workers:
            from cryptography.fernet import Fernet

            url = fresh_postgres_schema(postgres, f"roster_fleet_{n}")
            key = Fernet.generate_key().decode()
            env = {**os.environ, "ROSTER_DATABASE_URL": url, "ROSTER_SECRET_KEY": key}
            env |= {"ROSTER_SCHEDULE_SPREAD_SECONDS": str(spread_seconds)}
            env |= {"ROSTER_ACCESS_CHECK_DELAY_SECONDS": "3600"}
            cli(ROSTER, env, ["init"])
            now = utcnow()
            due = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
            made = create_fleet(url, key, server, sizes, due, spread_seconds)
            time.sleep(max(0.0, (due - utcnow()).total_seconds()))
            results["runs"].append(run_fleet(url, env, made, n, due, limit=3600))
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results
