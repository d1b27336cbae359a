"""``scripts/torture``: kill Roster at random points while it syncs a changing directory, and
check what a crash may leave behind (bounded, loopback only; not part of the test suite).

Each round changes the directory (adds, deletes, attribute and membership edits), starts a
sync in one of three ways, and kills that process with SIGKILL at a random moment:

- ``roster sync DIRECTORY`` by hand;
- ``roster worker`` running a job queued with ``roster sync --no-wait``;
- ``roster serve``, its built-in worker running a job queued through the API.

After each kill: the directory's lease outlives its dead holder by at most its TTL; the cache
equals the state before the round or the state a clean run then reaches (all or nothing);
after the clean run, no run is left ``running``, and replaying every event of the organization
in order gives exactly the cached users (no gap, no duplicate, no event of a run that was not
applied). With ``--restart-postgres`` a last round restarts the PostgreSQL server during a run:
the run fails with a clear error, applies nothing, and the next run converges.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from roster.bench.sync import apply_changes, cli, new_store, store_env
from roster.demo.generate import Spec, write_ldif
from roster.demo.slapd import Slapd, free_port
from roster.events import feed
from roster.store.db import as_utc, utcnow
from roster.store.schema import directories, directory_groups, directory_users, events, sync_runs

ROSTER = str(Path(sys.executable).parent / "roster")
LEASE_SECONDS = 3.0
WAYS = ("sync", "worker", "serve")


def state(engine: sa.Engine, directory_id: str) -> tuple[Any, ...]:
    """What a run changes, without timestamps: users, groups and their members."""
    with engine.connect() as conn:
        users = conn.execute(
            sa.select(directory_users.c.idp_id, directory_users.c.state, directory_users.c.content_hash)
            .where(directory_users.c.directory_id == directory_id, directory_users.c.present.is_(True))
            .order_by(directory_users.c.idp_id)
        ).all()
        groups = conn.execute(
            sa.select(directory_groups.c.idp_id, directory_groups.c.content_hash)
            .where(directory_groups.c.directory_id == directory_id)
            .order_by(directory_groups.c.idp_id)
        ).all()
    return tuple(map(tuple, users)), tuple(map(tuple, groups))


def events_replay(engine: sa.Engine, org: str, directory_id: str) -> list[str]:
    """Problems found replaying the organization's user events against the cache."""
    problems: list[str] = []
    alive: dict[str, str] = {}
    with engine.connect() as conn:
        found = feed.read(conn, [events.c.organization_id == org], limit=10**7).events
        cached = dict(
            conn.execute(
                sa.select(directory_users.c.id, directory_users.c.state).where(
                    directory_users.c.directory_id == directory_id, directory_users.c.present.is_(True)
                )
            ).all()
        )
    ids = [e["id"] for e in found]
    if len(ids) != len(set(ids)) or ids != sorted(ids):
        problems.append("event ids repeat or are out of order")
    for event in found:
        kind, data = event["event"], event["data"]
        data = json.loads(data) if isinstance(data, str) else data
        if not kind.startswith("dsync.user."):
            continue
        user = data["id"]
        if kind == "dsync.user.created":
            if user in alive:
                problems.append(f"{user} created twice")
            alive[user] = data.get("state", "active")
        elif kind == "dsync.user.updated":
            if user not in alive:
                problems.append(f"{user} updated before it was created")
            alive[user] = data.get("state", "active")
        elif kind == "dsync.user.deleted" and alive.pop(user, None) is None:
            problems.append(f"{user} deleted but never created")
    if alive != cached:
        missing, extra = set(cached) - set(alive), set(alive) - set(cached)
        changed = {u for u in set(alive) & set(cached) if alive[u] != cached[u]}
        problems.append(
            f"replay differs from the cache: {len(missing)} missing, {len(extra)} extra, "
            f"{len(changed)} states"
        )
    return problems


def lease_left(engine: sa.Engine, directory_id: str) -> float | None:
    with engine.connect() as conn:
        until = conn.execute(
            sa.select(directories.c.lease_until).where(directories.c.id == directory_id)
        ).scalar()
    value = as_utc(until)
    return None if value is None else (value - utcnow()).total_seconds()


def running_runs(engine: sa.Engine, directory_id: str) -> int:
    with engine.connect() as conn:
        where = (sync_runs.c.directory_id == directory_id, sync_runs.c.status == "running")
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(sync_runs).where(*where)).scalar() or 0
        )


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([ROSTER, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start(way: str, env: dict[str, str], directory_id: str, key: str, port: int) -> subprocess.Popen[bytes]:
    if way == "sync":
        return _spawn(["sync", directory_id, "--force"], env)
    if way == "worker":
        cli(ROSTER, env, ["sync", directory_id, "--force", "--no-wait"])
        return _spawn(["worker"], env)
    proc = _spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(
                f"http://127.0.0.1:{port}/api/v1/directories/{directory_id}/sync_runs",
                json={"force": True},
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            ).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc


def round_(rng: random.Random, ctx: dict[str, Any], n: int) -> dict[str, Any]:
    engine, env, d = ctx["engine"], ctx["env"], ctx["directory"]
    apply_changes(ctx["folder"], ctx["server"], ctx["spec"], rng.randint(20, 200), seed=1000 + n)
    before = state(engine, d)
    way = rng.choice(WAYS)
    proc = start(way, env, d, ctx["key"], free_port())
    time.sleep(rng.uniform(0.1, 2.5))  # a process starts in about a second; runs take one or two
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    left = lease_left(engine, d)
    killed = state(engine, d)
    time.sleep(max(0.0, left or 0.0))  # the dead holder's lease runs out
    clean = json.loads(cli(ROSTER, env, ["sync", d, "--force", "--json"]))
    after = state(engine, d)
    problems = []
    if left is not None and left > LEASE_SECONDS + 0.5:
        problems.append(f"the lease outlived its holder by {left:.1f} s")
    if killed not in (before, after):
        problems.append("the cache after the kill is neither the state before nor after a run")
    if clean["status"] != "succeeded":
        problems.append(f"the next run did not converge: {clean}")
    if running_runs(engine, d):
        problems.append("a run is still `running`")
    problems += events_replay(engine, ctx["org"], d)
    return {"round": n, "killed": way, "applied_before_kill": killed == after != before, "problems": problems}


def restart_postgres_round(ctx: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL restarted while a run is under way: the run either fails with a clear error and
    applies nothing, or (when no transaction of it was open at that moment) completes; either
    way the next run converges and the events still replay to the cache."""
    engine, env, d = ctx["engine"], ctx["env"], ctx["directory"]
    apply_changes(ctx["folder"], ctx["server"], ctx["spec"], 600, seed=99_999)
    before = state(engine, d)
    proc = subprocess.Popen(
        [ROSTER, "sync", d, "--force", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not running_runs(engine, d) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    engine.dispose()
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)
    _, err = proc.communicate(timeout=300)
    problems = []
    if "Traceback" in err:
        problems.append(f"a traceback instead of an error: {err[-500:]}")
    failed_state = state(engine, d)
    time.sleep(LEASE_SECONDS + 0.5)
    clean = json.loads(cli(ROSTER, env, ["sync", d, "--force", "--json"]))
    if clean["status"] != "succeeded":
        problems.append(f"the next run did not converge: {clean}")
    if proc.returncode != 0 and failed_state != before:
        problems.append("the failed run applied something")
    if proc.returncode == 0 and failed_state != state(engine, d):
        problems.append("the run said it succeeded but the next run still had changes to make")
    problems += events_replay(engine, ctx["org"], d)
    outcome = "failed" if proc.returncode else "completed"
    said = (err.strip().splitlines() or [""])[-1][:300]
    return {"round": "postgres restart", "outcome": outcome, "error": said, "problems": problems}


def torture(
    store: str, url: str | None, rounds: int, seed: int, users: int, restart_postgres: bool
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="roster-torture-"))
    spec = Spec(users=users, groups=max(1, users // 10), memberships=users * 3, seed=seed)
    server = Slapd(folder / "slapd")
    server.configure()
    with (folder / "directory.ldif").open("w") as fh:
        write_ldif(spec, fh)
    server.load(folder / "directory.ldif")
    server.start()
    try:
        env = {**store_env(folder, url, seed), "ROSTER_JOB_LEASE_SECONDS": str(LEASE_SECONDS)}
        env.pop("ROSTER_BIND_PASSWORD", None)
        d, key = new_store(ROSTER, env, folder, server)
        engine = sa.create_engine(env["ROSTER_DATABASE_URL"])
        with engine.connect() as conn:
            org = conn.execute(sa.select(directories.c.organization_id).where(directories.c.id == d)).scalar()
        ctx = {
            "engine": engine,
            "env": env,
            "directory": d,
            "key": key,
            "org": org,
            "folder": folder,
            "server": server,
            "spec": spec,
        }
        cli(ROSTER, env, ["sync", d, "--json"])
        rng = random.Random(seed)
        results = [round_(rng, ctx, n) for n in range(rounds)]
        if restart_postgres and store == "postgresql":
            results.append(restart_postgres_round(ctx))
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    kills = Counter(r["killed"] for r in results if "killed" in r)
    return {
        "store": store,
        "rounds": len(results),
        "kills": dict(kills),
        "killed_after_commit": sum(1 for r in results if r.get("applied_before_kill")),
        "problems": [f"round {r['round']}: {p}" for r in results for p in r["problems"]],
        "postgres_restart": next((r for r in results if r["round"] == "postgres restart"), None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/torture", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument(
        "--postgres", default=None, help="Also torture PostgreSQL at this URL (a fresh schema)."
    )
    parser.add_argument(
        "--restart-postgres",
        action="store_true",
        help="Restart the PostgreSQL server during a run (root; disturbs other users of it).",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/torture.json"))
    args = parser.parse_args()
    stores: dict[str, str | None] = {"sqlite": None}
    if args.postgres:
        stores["postgresql"] = args.postgres
    report = [
        torture(name, url, args.rounds, args.seed, args.users, args.restart_postgres)
        for name, url in stores.items()
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in report:
        print(
            f"{r['store']}: {r['rounds']} rounds, kills {r['kills']}, "
            f"{r['killed_after_commit']} killed after their commit, {len(r['problems'])} problems"
        )
        for problem in r["problems"]:
            print(f"  {problem}")
        if r["postgres_restart"]:
            restart = r["postgres_restart"]
            print(f"  postgres restarted during a run: it {restart['outcome']}; {restart['error']}")
    return 1 if any(r["problems"] for r in report) else 0


if __name__ == "__main__":
    raise SystemExit(main())
