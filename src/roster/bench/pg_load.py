"""What a stretch of work cost the PostgreSQL primary: CPU seconds of the server's processes,
WAL written and transactions committed, from two snapshots.

CPU is read from ``/proc`` and needs the server on this host: the postmaster (the parent of the
snapshot's own backend) with its live children, plus the CPU of children that have exited (the
kernel adds it to the postmaster's ``cutime``/``cstime``). Elsewhere it is None."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa


@dataclass(frozen=True)
class Load:
    cpu_seconds: float | None
    wal_bytes: int
    commits: int


def snapshot(url: str) -> Load:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            backend = int(conn.execute(sa.text("select pg_backend_pid()")).scalar() or 0)
            wal = int(conn.execute(sa.text("select pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar() or 0)
            commits = int(
                conn.execute(sa.text("select sum(xact_commit) from pg_stat_database")).scalar() or 0
            )
            cpu = server_cpu_seconds(backend)  # while the backend lives: its parent is the postmaster
    finally:
        engine.dispose()
    return Load(cpu, wal, commits)


def used(before: Load, after: Load) -> dict[str, float | int | None]:
    cpu = None
    if before.cpu_seconds is not None and after.cpu_seconds is not None:
        cpu = round(after.cpu_seconds - before.cpu_seconds, 1)
    return {
        "postgres_cpu_seconds": cpu,
        "postgres_wal_mb": round((after.wal_bytes - before.wal_bytes) / 2**20, 1),
        "postgres_commits": after.commits - before.commits,
    }


def server_cpu_seconds(backend: int) -> float | None:
    stat = _stat(backend)
    if stat is None:
        return None
    postmaster = int(stat[1])
    own = _stat(postmaster)
    if own is None:
        return None
    ticks = sum(int(v) for v in own[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(postmaster):
            child = _stat(int(entry.name))
            if child is not None and int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...] (field 3 onwards)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()
