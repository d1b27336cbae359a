"""Sync benchmarks against a generated directory in a private slapd, measured against ``ldapsearch``.

Every figure is the median of ``--repeat`` runs in one process on one machine; the baseline
(``ldapsearch -E pr=1000/noprompt`` of the same entries to /dev/null) is measured in the same run,
so the ratios compare across machines. Each sync runs as its own ``roster sync`` process, so its
peak RSS is measured alone.
"""

from __future__ import annotations

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
) -> dict[str, Any]:
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
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
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
        results["ldapsearch_seconds"] = round(baseline, 2)
        full, rss, resync = [], [], []
        for attempt in range(repeat):
            env = _env(folder, database_url, attempt)
            _cli(roster, env, ["init"])
            org = json.loads(_cli(roster, env, ["org", "create", "Bench", "--json"]))["id"]
            (folder / "pw").write_text(server.admin_password)
            d = json.loads(
                _cli(
                    roster,
                    env,
                    [
                        "directory",
                        "create",
                        "--org",
                        org,
                        "--type",
                        "ldap",
                        "--name",
                        "bench",
                        "--url",
                        server.url,
                        "--bind-dn",
                        server.admin_dn,
                        "--bind-password-file",
                        str(folder / "pw"),
                        "--search-path",
                        "DC=example, DC=com",
                        "--json",
                    ],
                )
            )["id"]
            seconds, peak, out = _timed(
                [roster, "sync", d, "--json", "--force"], env=env, stdout=subprocess.PIPE
            )
            full.append(seconds)
            rss.append(peak)
            seconds, _, out = _timed([roster, "sync", d, "--full", "--json"], env=env, stdout=subprocess.PIPE)
            counts = json.loads(out)["counts"]
            written = sum(
                v for k, v in counts.items() if k not in ("skipped", "ignored_members", "foreign_members")
            )
            resync.append(seconds)
            results["unchanged_resync_writes"] = written
        results["full_sync_seconds"] = round(statistics.median(full), 2)
        results["full_sync_peak_rss_mb"] = max(rss)
        results["unchanged_resync_seconds"] = round(statistics.median(resync), 2)
        changes = folder / "changes.ldif"
        changes.write_text(_changes(spec, incremental_changes, seed=11))
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
            check=False,
        )
        seconds, peak, out = _timed([roster, "sync", d, "--json", "--force"], env=env, stdout=subprocess.PIPE)
        results["incremental_seconds"] = round(seconds, 2)
        results["incremental_kind"] = json.loads(out)["kind"]
        results["incremental_peak_rss_mb"] = peak
        results["ratios_to_ldapsearch"] = {
            "full_sync": round(results["full_sync_seconds"] / baseline, 1),
            "unchanged_resync": round(results["unchanged_resync_seconds"] / baseline, 1),
        }
        results["database"] = (database_url or "sqlite").split(":", 1)[0]
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _env(folder: Path, database_url: str | None, attempt: int) -> dict[str, str]:
    return {
        **os.environ,
        "ROSTER_DATABASE_URL": database_url or f"sqlite:///{folder / f'bench{attempt}.db'}",
        "ROSTER_SECRET_KEY": Fernet.generate_key().decode(),
    }


def _cli(roster: str, env: dict[str, str], args: list[str]) -> str:
    result = subprocess.run([roster, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"roster {' '.join(args[:2])} failed: {result.stderr[-2000:]}")
    return result.stdout
