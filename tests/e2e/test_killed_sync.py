"""A first sync killed (SIGKILL) at random points leaves nothing visible: all of it or none of it,
on SQLite and on PostgreSQL. `roster sync` runs as a subprocess against a real slapd."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from subprocess import DEVNULL

import sqlalchemy as sa

from roster.demo.slapd import Slapd
from roster.store import jobs
from roster.store.db import as_utc, utcnow
from roster.store.schema import (
    accounts,
    directories,
    directory_groups,
    directory_users,
    events,
    group_user_memberships,
    sync_runs,
)
from tests.e2e.test_cli import ROSTER, Cli
from tests.support.ldap_tree import Tree

USERS, GROUPS, PER_GROUP = 1200, 30, 40


def visible(url: str, directory_id: str, org: str) -> tuple[int, ...]:
    """What readers of the store see of one directory: users, groups, memberships, events, accounts."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:

            def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
                return int(
                    conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0
                )

            return (
                count(directory_users, directory_users.c.directory_id == directory_id),
                count(directory_groups, directory_groups.c.directory_id == directory_id),
                count(group_user_memberships, group_user_memberships.c.directory_id == directory_id),
                count(events, events.c.directory_id == directory_id),
                count(accounts, accounts.c.organization_id == org),
            )
    finally:
        engine.dispose()


def lease_of(url: str, directory_id: str) -> tuple[str | None, float | None]:
    """(holder, seconds left) of a directory's lease."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            d = directories
            row = conn.execute(
                sa.select(d.c.lease_owner, d.c.lease_until).where(d.c.id == directory_id)
            ).one()
    finally:
        engine.dispose()
    until = as_utc(row.lease_until)
    return row.lease_owner, None if until is None else (until - utcnow()).total_seconds()


def new_directory(cli: Cli, slapd: Slapd, tree: Tree, n: int) -> tuple[str, str]:
    org = cli.ok("org", "create", f"Org {n}")["id"]
    (cli.folder / "pw").write_text(slapd.admin_password + "\n")
    d = cli.ok(
        "directory", "create", "--org", org, "--type", "ldap", "--name", f"Directory {n}", "--url", slapd.url,
        "--bind-dn", slapd.admin_dn, "--bind-password-file", str(cli.folder / "pw"),
        "--search-path", tree.search_path,
    )["id"]  # fmt: skip
    return org, d


def _started(url: str, directory_id: str, cli: Cli, proc: subprocess.Popen[bytes]) -> str:
    """The id of the directory's run once ``proc`` has recorded it as running."""
    engine = sa.create_engine(url)
    deadline = time.monotonic() + 30
    try:
        while True:
            with engine.connect() as conn:
                found = conn.execute(
                    sa.select(sync_runs.c.id).where(
                        sync_runs.c.directory_id == directory_id, sync_runs.c.status == "running"
                    )
                ).scalar()
            if found:
                return str(found)
            assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
            time.sleep(0.01)
    finally:
        engine.dispose()


def _a_live_run_cancelled(cli: Cli, slapd: Slapd, tree: Tree, url: str) -> tuple[str, str]:
    """Cancelling frees a directory at once: a process still running the run applies nothing,
    and `roster runs cancel` frees what a killed one held without waiting for its lease."""
    org, d = new_directory(cli, slapd, tree, 98)
    proc = subprocess.Popen(
        [ROSTER, "sync", d, "--force"], cwd=cli.folder, env=cli.env, stdout=DEVNULL, stderr=DEVNULL
    )
    run_id = _started(url, d, cli, proc)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        jobs.cancel_run(conn, run_id)
    engine.dispose()
    assert lease_of(url, d)[0] is None
    assert proc.wait(timeout=120) != 0
    assert visible(url, d, org) == (0, 0, 0, 0, 0)  # it lost its lease: nothing applied
    org, d = new_directory(cli, slapd, tree, 99)
    proc = subprocess.Popen(
        [ROSTER, "sync", d, "--force"], cwd=cli.folder, env=cli.env, stdout=DEVNULL, stderr=DEVNULL
    )
    run_id = _started(url, d, cli, proc)
    proc.kill()
    proc.wait(timeout=30)
    done = cli.ok("runs", "cancel", run_id)
    assert done["status"] == "failed" and lease_of(url, d)[0] is None
    again = cli.run("runs", "cancel", run_id)
    assert again.returncode != 0 and "not running" in again.stderr
    cli.ok("sync", d, "--force")  # at once: the lease is free
    run = next(r for r in cli.ok("runs", "list", d) if r["id"] == run_id)
    return run["status"], run["error_reason"]


def test_a_first_sync_killed_at_random_points_leaves_nothing_visible(
    database_url: str, tmp_path: Path, slapd: Slapd, tree: Tree
) -> None:
    people = [tree.add_user(f"k{i}") for i in range(USERS)]
    for g in range(GROUPS):
        tree.add_group(f"kg{g}", people[g * PER_GROUP : (g + 1) * PER_GROUP])
    cli = Cli(tmp_path)
    cli.env["ROSTER_DATABASE_URL"] = database_url
    cli.env["ROSTER_JOB_LEASE_SECONDS"] = "3"  # `roster sync` renews it every second while it runs
    cli.ok("init")
    org, d = new_directory(cli, slapd, tree, 0)
    cli.ok("sync", d, "--force")
    whole = visible(database_url, d, org)
    assert whole[:3] == (USERS, GROUPS, USERS) and whole[4] == USERS
    rnd = random.Random(20261130)
    outcomes = []
    for n in range(1, 7):
        org, d = new_directory(cli, slapd, tree, n)
        proc = subprocess.Popen(
            [ROSTER, "sync", d, "--force"],
            cwd=cli.folder,
            env=cli.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rnd.uniform(0.3, 3.0))
        proc.kill()
        proc.wait(timeout=30)
        seen = visible(database_url, d, org)
        assert seen in ((0, 0, 0, 0, 0), whole), (n, seen)  # all of it, or none of it
        outcomes.append(seen == whole)
        holder, left = lease_of(database_url, d)  # a killed `roster sync` holds it a few seconds at most
        assert holder is None or (left is not None and left <= 3.5), (holder, left)
        time.sleep(max(0.0, left or 0.0))
        retry = cli.ok("sync", d, "--force")  # and the next run converges
        assert visible(database_url, d, org) == whole, retry
        states = [(r["status"], r["error_reason"]) for r in cli.ok("runs", "list", d)]
        assert states[0] == ("succeeded", None) and ("running", None) not in states, states
        killed = ("succeeded", None) if seen == whole else ("failed", "worker_lost")  # reaped
        assert states[1:] in ([], [killed]), states  # (none: killed before its run was recorded)
    cancelled = _a_live_run_cancelled(cli, slapd, tree, database_url)
    assert cancelled == ("failed", "cancelled"), cancelled
    print(f"killed runs that had committed: {sum(outcomes)} of {len(outcomes)}")
