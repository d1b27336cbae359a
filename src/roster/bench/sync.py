"""Sync benchmarks against a generated directory in a private slapd, measured against ``ldapsearch``.

Every figure is the median of ``--repeat`` runs in one process on one machine; the baseline
(``ldapsearch -E pr=1000/noprompt`` of the same entries to /dev/null) is measured in the same run,
so the ratios compare across machines. Each sync runs as its own ``roster sync`` process, so its
peak RSS is measured alone.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from roster.bench.readers import reading, serving
from roster.demo.generate import Spec, group_dn, user_dn, write_ldif
from roster.demo.slapd import Slapd

FILTER = "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))"


def _timed(
    cmd: list[str], env: dict[str, str] | None = None, stdout: Any = subprocess.DEVNULL
) -> tuple[float, int, str]:
    """Run a command; (seconds, peak RSS in MB, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, out


def _changes(spec: Spec, count: int, seed: int) -> str:
    """An LDIF of ``count`` random changes: adds, deletes, attribute edits and membership edits."""
    rng = random.Random(seed)
    parts = []
    removed: set[int] = set()
    for n in range(count):
        kind = rng.choice(["add", "delete", "edit", "edit", "member"])
        if kind == "add":
            uid = f"bench{seed}x{n}"
            parts.append(
                f"dn: uid={uid},ou=People,{spec.suffix}\nchangetype: add\nobjectClass: inetOrgPerson\n"
                f"uid: {uid}\ncn: Bench {n}\nsn: Bench\nmail: {uid}@{spec.domain}\n"
            )
        elif kind == "delete":
            i = rng.randrange(spec.users)
            if i in removed:
                continue
            removed.add(i)
            parts.append(f"dn: {user_dn(spec, i)}\nchangetype: delete\n")
        elif kind == "edit":
            i = rng.randrange(spec.users)
            if i in removed:
                continue
            parts.append(
                f"dn: {user_dn(spec, i)}\nchangetype: modify\nreplace: title\ntitle: Changed {n}\n-\n"
            )
        else:
            i = rng.randrange(spec.users)
            if i in removed:
                continue
            parts.append(
                f"dn: {group_dn(spec, rng.randrange(spec.groups))}\nchangetype: modify\nadd: member\n"
                f"member: {user_dn(spec, i)}\n-\n"
            )
    return "\n".join(parts)


def run(
    users: int,
    groups: int,
    memberships: int | None,
    repeat: int = 3,
    database_url: str | None = None,
    incremental_changes: int = 1000,
    postgres_url: str | None = None,
    sqlite: bool = True,
    readers: bool = True,
) -> dict[str, Any]:
    """One directory size: the ldapsearch baseline, then each store (SQLite, and PostgreSQL when
    ``postgres_url`` is given) measured on the same slapd."""
    folder = Path(tempfile.mkdtemp(prefix="roster-bench-sync-"))
    spec = Spec(users=users, groups=groups, memberships=memberships, seed=7)
    server = Slapd(folder / "slapd")
    server.configure()
    ldif = folder / "directory.ldif"
    with ldif.open("w") as fh:
        write_ldif(spec, fh)
    load_started = time.perf_counter()
    server.load(ldif)
    load_seconds = time.perf_counter() - load_started
    server.start()
    results: dict[str, Any] = {
        "users": users,
        "groups": groups,
        "memberships": memberships or users * 3,
        "load_seconds": round(load_seconds, 2),
    }
    try:
        search = [
            "ldapsearch",
            "-x",
            "-LLL",
            "-H",
            server.url,
            "-D",
            server.admin_dn,
            "-w",
            server.admin_password,
            "-b",
            spec.suffix,
            "-E",
            "pr=1000/noprompt",
            FILTER,
            "*",
            "entryUUID",
        ]
        baseline = statistics.median(_timed(search)[0] for _ in range(repeat))
        results["ldapsearch_seconds"] = round(baseline, 3)
        stores: dict[str, str | None] = {"sqlite": None} if sqlite else {}  # a fresh file per attempt
        postgres = postgres_url or (
            database_url if database_url and database_url.startswith("postgres") else None
        )
        if postgres:
            stores["postgresql"] = postgres  # a fresh schema for every attempt
        seed = 11
        for name, url in stores.items():
            results[name], seed = _measure_store(
                folder, server, spec, url, repeat, incremental_changes, baseline, seed, readers
            )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _measure_store(
    folder: Path,
    server: Slapd,
    spec: Spec,
    url: str | None,
    repeat: int,
    incremental_changes: int,
    baseline: float,
    seed: int,
    readers: bool = True,
) -> tuple[dict[str, Any], int]:
    """Full first sync into an empty store, unchanged re-syncs, and incremental runs after changes;
    each ``repeat`` times. Returns the results and the next change seed (every round of changes differs)."""
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
    full: list[tuple[float, float, int]] = []
    resync: list[tuple[float, float, int]] = []
    written = 0
    env: dict[str, str] = {}
    d = ""
    for attempt in range(repeat):
        env = store_env(folder, url, attempt)
        d, _ = new_store(roster, env, folder, server)
        seconds, run_seconds, peak, _ = _sync(roster, env, [d, "--force"])
        full.append((seconds, run_seconds, peak))
        seconds, run_seconds, peak, counts = _sync(roster, env, [d, "--full"])
        resync.append((seconds, run_seconds, peak))
        written = max(written, _writes(counts))
    results: dict[str, Any] = {
        "full_sync_seconds": _median(full, 0),
        "full_sync_run_seconds": _median(full, 1),
        "full_sync_peak_rss_mb": max(peak for _, _, peak in full),
        "unchanged_resync_seconds": _median(resync, 0),
        "unchanged_resync_run_seconds": _median(resync, 1),
        "unchanged_resync_peak_rss_mb": max(peak for _, _, peak in resync),
        "unchanged_resync_writes": written,
    }
    if readers:
        results["readers_during_full_sync"] = _readers_during_full_sync(roster, folder, server, url, repeat)
    # Incremental runs on the last store: a different round of changes before each.
    incremental: list[tuple[float, float, int]] = []
    kinds = set()
    for _ in range(repeat):
        apply_changes(folder, server, spec, incremental_changes, seed)
        seed += 1
        seconds, run_seconds, peak, kind, _ = sync_report(roster, env, [d, "--force"])
        incremental.append((seconds, run_seconds, peak))
        kinds.add(kind)
    results["incremental_seconds"] = _median(incremental, 0)
    results["incremental_run_seconds"] = _median(incremental, 1)
    results["incremental_peak_rss_mb"] = max(peak for _, _, peak in incremental)
    results["incremental_kind"] = "/".join(sorted(kinds))
    if url is not None:
        _drop_postgres_schemas(url, [f"roster_bench_{attempt}" for attempt in range(repeat + 1)])
    results["ratios_to_ldapsearch"] = {
        "full_sync": round(results["full_sync_seconds"] / baseline, 1),
        "full_sync_run": round(results["full_sync_run_seconds"] / baseline, 1),
        "unchanged_resync": round(results["unchanged_resync_seconds"] / baseline, 1),
        "unchanged_resync_run": round(results["unchanged_resync_run_seconds"] / baseline, 1),
    }
    return results, seed


def new_store(roster: str, env: dict[str, str], folder: Path, server: Slapd) -> tuple[str, str]:
    """An organization with an API key and an LDAP directory on ``server``: (directory id, key)."""
    cli(roster, env, ["init"])
    org = json.loads(cli(roster, env, ["org", "create", "Bench", "--json"]))["id"]
    key = json.loads(cli(roster, env, ["apikey", "create", "--org", org, "--json"]))["secret"]
    (folder / "pw").write_text(server.admin_password)
    create = ["directory", "create", "--org", org, "--type", "ldap", "--name", "bench", "--url", server.url]
    create += ["--bind-dn", server.admin_dn, "--bind-password-file", str(folder / "pw")]
    create += ["--search-path", "DC=example, DC=com", "--json"]
    return json.loads(cli(roster, env, create))["id"], key


def _readers_during_full_sync(
    roster: str, folder: Path, server: Slapd, url: str | None, attempt: int
) -> dict[str, Any]:
    """One more first sync into a fresh store while a client reads pages of 100 users from
    ``roster serve`` (a separate attempt: the readers' load must not inflate the timed ones)."""
    env = store_env(folder, url, attempt)
    d, key = new_store(roster, env, folder, server)
    with serving(roster, env) as base, reading(base, key, d) as latencies:
        _, run_seconds, _, _ = _sync(roster, env, [d, "--force"])
    return {"full_sync_run_seconds": round(run_seconds, 2), **latencies.summary()}


def _median(runs: list[tuple[float, float, int]], index: int) -> float:
    return round(statistics.median(r[index] for r in runs), 2)


def _sync(roster: str, env: dict[str, str], args: list[str]) -> tuple[float, float, int, dict[str, int]]:
    """(process seconds, run seconds, peak RSS MB, counts) of one ``roster sync``."""
    seconds, run_seconds, peak, _, counts = sync_report(roster, env, args)
    return seconds, run_seconds, peak, counts


def _writes(counts: dict[str, int]) -> int:
    """Changes a run applied (what it read but left alone, such as skipped entries, is not a write)."""
    return sum(v for k, v in counts.items() if k not in ("skipped", "ignored_members", "foreign_members"))


def sync_report(
    roster: str, env: dict[str, str], args: list[str]
) -> tuple[float, float, int, str, dict[str, int]]:
    seconds, peak, out = _timed([roster, "sync", *args, "--json"], env=env, stdout=subprocess.PIPE)
    report = json.loads(out)
    if report["status"] != "succeeded":
        raise RuntimeError(f"roster sync {report['status']}: {report['error']}")
    return seconds, float(report["seconds"]), peak, str(report["kind"]), dict(report["counts"])


def apply_changes(folder: Path, server: Slapd, spec: Spec, count: int, seed: int) -> None:
    changes = folder / "changes.ldif"
    changes.write_text(_changes(spec, count, seed=seed))
    subprocess.run(
        [
            "ldapmodify",
            "-x",
            "-H",
            server.url,
            "-D",
            server.admin_dn,
            "-w",
            server.admin_password,
            "-c",
            "-f",
            str(changes),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # -c: a change naming an entry an earlier round deleted is skipped
    )


def store_env(folder: Path, database_url: str | None, attempt: int) -> dict[str, str]:
    if database_url is None:
        url = f"sqlite:///{folder / f'bench{attempt}.db'}"
    else:
        url = fresh_postgres_schema(database_url, f"roster_bench_{attempt}")
    return {**os.environ, "ROSTER_DATABASE_URL": url, "ROSTER_SECRET_KEY": Fernet.generate_key().decode()}


def fresh_postgres_schema(url: str, schema: str) -> str:
    """An empty schema on the PostgreSQL server at ``url`` (dropped first if a run left it)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def _drop_postgres_schemas(url: str, schemas: list[str]) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for schema in schemas:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def cli(roster: str, env: dict[str, str], args: list[str]) -> str:
    result = subprocess.run([roster, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"roster {' '.join(args[:2])} failed: {result.stderr[-2000:]}")
    return result.stdout


def growth(measured: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Between consecutive sizes: how time and peak memory grew relative to the size (1.0: linear;
    the targets are time at most linear and memory below it)."""
    out: dict[str, Any] = {}
    sizes = sorted(measured)
    for small, large in itertools.pairwise(sizes):
        factor = large / small
        for store in ("sqlite", "postgresql"):
            a, b = measured[small].get(store), measured[large].get(store)
            if not a or not b:
                continue
            out[f"{store}_{small}_to_{large}"] = {
                "size_factor": round(factor, 1),
                "full_sync_time_per_size": round(
                    b["full_sync_run_seconds"] / a["full_sync_run_seconds"] / factor, 2
                ),
                "full_sync_memory_per_size": round(
                    b["full_sync_peak_rss_mb"] / a["full_sync_peak_rss_mb"] / factor, 2
                ),
                "resync_time_per_size": round(
                    b["unchanged_resync_run_seconds"] / a["unchanged_resync_run_seconds"] / factor, 2
                ),
            }
    return out
