"""``scripts/bench fleet``: many organizations due at once, synced by N ``roster worker`` processes
sharing one PostgreSQL database.

Each organization's directory is one OU (``--users`` people in it) on one of ``--servers`` slapd
instances (100 organizations each by default; the ``--big`` directory on a server of its own).
An LDAP server per tenant would not fit this machine; one server for all of them would measure
slapd instead of Roster (OpenLDAP's subtree search costs grow with the whole database: a
1,000-entry OU answers in about 0.04 s from a 100,000-entry server and 0.35 s from a
1,000,000-entry one). Every organization's daily sync is set to the same minute; the workers' own
schedulers enqueue the runs (spread over ``ROSTER_SCHEDULE_SPREAD_SECONDS``), and the bench reports
the time until every directory has synced, syncs per minute, each directory's wait from its due
time to its run's start (p50, p99, max), jobs run again, runs abandoned by a killed worker, lease
conflicts, the most database connections seen, and each worker's peak resident memory. ``--big N``
adds one directory of N users due with the others (does it starve, do the small ones wait for
it?); ``--kill-worker`` SIGKILLs one worker a third of the way through.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from roster.bench import pg_load
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


def write_ldif(path: Path, sizes: list[tuple[str, int]]) -> None:
    """One OU per organization with its people."""
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


def start_servers(
    folder: Path, orgs: int, users: int, big: int, per_server: int
) -> tuple[list[Slapd], dict[str, tuple[Slapd, int]]]:
    """The slapd instances, loaded and started; OU -> (its server, its size)."""
    sizes = [(f"org{n:04d}", users) for n in range(orgs)]
    groups = [sizes[i : i + per_server] for i in range(0, len(sizes), per_server)]
    groups += [[("big", big)]] if big else []
    servers: list[Slapd] = []
    placed: dict[str, tuple[Slapd, int]] = {}
    try:
        for k, group in enumerate(groups):
            server = Slapd(folder / f"slapd{k}")
            server.configure()
            write_ldif(folder / f"fleet{k}.ldif", group)
            server.load(folder / f"fleet{k}.ldif")
            (folder / f"fleet{k}.ldif").unlink()
            server.start()
            servers.append(server)
            placed |= {ou: (server, size) for ou, size in group}
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers, placed


def create_fleet(url: str, key: str, placed: dict[str, tuple[Slapd, int]]) -> dict[str, str]:
    """Organizations and their directories, linked; directory id -> OU."""
    rt = open_runtime(Settings(database_url=url, secret_key=key))
    made: dict[str, str] = {}
    try:
        for ou, (server, _) in placed.items():
            with rt.engine.begin() as conn:
                org_id = repo.create_organization(conn, f"Org {ou}", f"{ou}.example")["id"]
            settings = {
                "url": server.url,
                "bind_dn": server.admin_dn,
                "search_paths": (f"OU={ou}, DC=example, DC=com",),
            }
            row = create_directory(rt, DirectorySpec(org_id, ou, "ldap", settings, server.admin_password))
            made[row["id"]] = ou
        with rt.engine.begin() as conn:
            conn.execute(sa.update(directories).values(state="linked"))
    finally:
        rt.engine.dispose()
    return made


def schedule_fleet(url: str, made: dict[str, str], window: float, seed: bool = True) -> datetime:
    """Every organization due daily at the next minute (UTC), as existing customers: each
    directory's last full run was yesterday, after yesterday's due time (``seed``: a run is
    made for it, else its runs so far are moved there). Returns the due time."""
    due = (utcnow() + timedelta(seconds=65)).replace(second=0, microsecond=0)
    yesterday = due - timedelta(days=1) + timedelta(seconds=window + 1)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(organizations).values(daily_sync_time=due.strftime("%H:%M"), timezone="UTC")
            )
            for directory_id in made if seed else ():
                run = repo.start_run(conn, repo.get_directory(conn, directory_id), "schedule", "full")
                repo.finish_run(conn, run["id"], "succeeded", {})
            conn.execute(sa.update(sync_runs).values(started_at=yesterday, finished_at=yesterday))
    finally:
        engine.dispose()
    return due


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_fleet(
    url: str,
    env: dict[str, str],
    made: dict[str, str],
    workers: int,
    due: datetime,
    limit: float,
    kill: bool = False,
) -> dict[str, Any]:
    """Start ``workers`` workers, wait until every directory has synced for ``due`` (or ``limit``
    seconds), and report; ``kill``: SIGKILL the first worker once a third of them have synced."""
    before = pg_load.snapshot(url)
    procs = [
        subprocess.Popen([ROSTER, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        watched = watch(url, procs, len(made), due, limit, kill)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    load = pg_load.used(before, pg_load.snapshot(url))
    return {"workers": workers, "directories": len(made), **watched, **load, **outcome(url, made, due, env)}


def watch(
    url: str, procs: list[subprocess.Popen[bytes]], total: int, due: datetime, limit: float, kill: bool
) -> dict[str, Any]:
    """Poll until every directory has a successful full run since ``due``: elapsed time, most
    database connections, peak RSS per worker, and when (if) a worker was killed."""
    engine = sa.create_engine(url)
    started, connections, peaks = time.monotonic(), 0, [0.0] * len(procs)
    killed_at: float | None = None
    try:
        while time.monotonic() - started < limit:
            with engine.connect() as conn:
                done = int(
                    conn.execute(
                        sa.select(sa.func.count(sa.distinct(sync_runs.c.directory_id))).where(
                            *synced_since(due)
                        )
                    ).scalar()
                    or 0
                )
                active = conn.execute(sa.text("select count(*) from pg_stat_activity")).scalar()
            connections = max(connections, int(active or 0))
            peaks = [max(p, peak_rss_mb(proc.pid)) for p, proc in zip(peaks, procs, strict=True)]
            if done == total:
                break
            if kill and killed_at is None and done * 3 >= total:
                procs[0].send_signal(signal.SIGKILL)
                killed_at = time.monotonic() - started
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        engine.dispose()
    return {
        "seconds_until_all_synced": round(elapsed, 1),
        "syncs_per_minute": round(total / elapsed * 60, 1) if elapsed else None,
        "max_db_connections": connections,
        "peak_rss_mb_per_worker": [round(p) for p in peaks],
        "worker_killed_after_s": None if killed_at is None else round(killed_at, 1),
    }


def synced_since(due: datetime) -> tuple[Any, ...]:
    return (sync_runs.c.status == "succeeded", sync_runs.c.kind == "full", sync_runs.c.started_at >= due)


def outcome(url: str, made: dict[str, str], due: datetime, env: dict[str, str]) -> dict[str, Any]:
    """What the database says happened: each directory's wait from its due time to its first
    run's start, jobs run again, runs abandoned by a dead worker or a lost lease, doubles."""
    engine = sa.create_engine(url)
    today = synced_since(due)
    r = sync_runs
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(r.c.directory_id, sa.func.min(r.c.started_at)).where(*today).group_by(r.c.directory_id)
        ).all()
        again = conn.execute(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.attempts > 1, jobs.c.created_at >= due)
        ).scalar()
        failed: dict[str, int] = dict(
            conn.execute(
                sa.select(r.c.error_reason, sa.func.count())
                .where(r.c.status == "failed", r.c.started_at >= due)
                .group_by(r.c.error_reason)
            ).all()
        )
        twice = conn.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(r.c.directory_id)
                .where(*today)
                .group_by(r.c.directory_id)
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
        "synced": len(runs),
        "wait_p50_s": round(statistics.median(waits), 1) if waits else None,
        "wait_p99_s": round(waits[max(0, int(len(waits) * 0.99) - 1)], 1) if waits else None,
        "wait_max_s": round(waits[-1], 1) if waits else None,
        "jobs_run_again": again,
        "runs_abandoned_by_a_dead_worker": failed.get("worker_lost", 0),
        "lease_conflicts": failed.get("lease_lost", 0),
        "directories_synced_twice": twice,
        "big_directory_wait_s": round(by_directory[big], 1) if big in by_directory else None,
    }


def env_spread(env: dict[str, str]) -> float:
    return float(env.get("ROSTER_SCHEDULE_SPREAD_SECONDS", "0"))


def run(
    postgres: str,
    orgs: int,
    users: int,
    workers: list[int],
    big: int = 0,
    spread_seconds: float = 60.0,
    kill: bool = False,
    per_server: int = 100,
    days: int = 1,
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="roster-fleet-"))
    loaded = time.perf_counter()
    servers, placed = start_servers(folder, orgs, users, big, per_server)
    results: dict[str, Any] = {
        "orgs": orgs,
        "users_per_directory": users,
        "big_directory_users": big,
        "ldap_servers": len(servers),
        "load_seconds": round(time.perf_counter() - loaded, 1),
        "note": f"{len(servers)} slapd instances, {per_server} organizations each (one OU per organization; "
        "the big directory on its own): a server per tenant is too heavy for this machine",
        "runs": [],
    }
    try:
        for n in workers:
            results["runs"] += fleet_round(postgres, placed, n, spread_seconds, kill and n > 1, days)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def fleet_round(
    postgres: str,
    placed: dict[str, tuple[Slapd, int]],
    workers: int,
    spread_seconds: float,
    kill: bool,
    days: int = 1,
) -> list[dict[str, Any]]:
    """A fresh schema, the fleet created and due at the next minute, then ``workers`` workers;
    ``days`` > 1: due again the next "day" (a full run of unchanged directories: the everyday case)."""
    from cryptography.fernet import Fernet

    url = fresh_postgres_schema(postgres, f"roster_fleet_{workers}")
    key = Fernet.generate_key().decode()
    env = {**os.environ, "ROSTER_DATABASE_URL": url, "ROSTER_SECRET_KEY": key}
    env |= {"ROSTER_SCHEDULE_SPREAD_SECONDS": str(spread_seconds)}
    env |= {"ROSTER_ACCESS_CHECK_DELAY_SECONDS": "3600"}
    cli(ROSTER, env, ["init"])
    made = create_fleet(url, key, placed)
    measured = []
    for day in range(1, days + 1):
        due = schedule_fleet(url, made, spread_seconds, seed=day == 1)
        time.sleep(max(0.0, (due - utcnow()).total_seconds()))
        kind = "first sync" if day == 1 else "unchanged re-sync"
        measured.append({"day": day, "sync": kind, **run_fleet(url, env, made, workers, due, 3600, kill)})
    return measured
