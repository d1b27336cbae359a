"""Fair scheduling of many directories, with an injected clock for the schedules and a stand-in
for the sync itself (it records who ran when, and writes the run as a real sync would): real
workers claiming real jobs from SQLite and PostgreSQL. Properties, not timings."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from roster.runtime import Runtime
from roster.store import jobs, repo
from roster.store.db import utcnow
from roster.store.schema import directories, organizations, sync_runs
from roster.store.schema import jobs as jobs_table
from roster.sync import worker as worker_module
from roster.sync.ingest import Outcome
from roster.sync.schedule import Schedules, latest_due, spread
from roster.sync.worker import Worker
from tests.conftest import make_runtime

SPREAD = 600.0


@dataclass
class Ledger:
    """What the stand-in sync saw: every run's directory and organization, in start order, and
    the most runs at once per directory and per organization."""

    started: list[tuple[str, str]] = field(default_factory=list)
    running_dirs: Counter[str] = field(default_factory=Counter)
    running_orgs: Counter[str] = field(default_factory=Counter)
    most_per_dir: int = 0
    most_per_org: int = 0
    seconds: float = 0.003  # how long the stand-in "syncs"
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def fleet_rt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(database_url, tmp_path, schedule_spread_seconds=SPREAD, jobs_per_organization=2)
    yield rt
    rt.engine.dispose()


def make_fleet(
    rt: Runtime, orgs: int, per_org: int, at: str, synced: datetime | None = None
) -> dict[str, str]:
    """Linked LDAP directories (never contacted: the sync is a stand-in), last synced in full at
    ``synced`` (None: never); directory -> org."""
    made = {}
    with rt.engine.begin() as conn:
        for n in range(orgs):
            org = repo.create_organization(conn, f"Org {n}", f"o{n}.example")["id"]
            conn.execute(
                sa.update(organizations)
                .where(organizations.c.id == org)
                .values(daily_sync_time=at, timezone="UTC")
            )
            for i in range(per_org):
                config = {"url": "ldap://127.0.0.1:9", "bind_dn": "cn=x", "search_paths": [f"OU=d{i}, DC=x"]}
                made[repo.create_directory(conn, org, f"D{n}.{i}", "ldap", config, None)["id"]] = org
        conn.execute(sa.update(directories).values(state="linked"))
        for directory_id in made if synced else ():
            run = repo.start_run(conn, repo.get_directory(conn, directory_id), "schedule", "full")
            repo.finish_run(conn, run["id"], "succeeded", {})
            conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run["id"]).values(started_at=synced))
    return made


def stand_in(ledger: Ledger, owners: dict[str, str]) -> Any:
    def sync_directory(rt: Runtime, directory_id: str, **_: Any) -> Outcome:
        org = owners[directory_id]
        with ledger.lock:
            ledger.started.append((directory_id, org))
            ledger.running_dirs[directory_id] += 1
            ledger.running_orgs[org] += 1
            ledger.most_per_dir = max(ledger.most_per_dir, ledger.running_dirs[directory_id])
            ledger.most_per_org = max(ledger.most_per_org, ledger.running_orgs[org])
        with rt.engine.begin() as conn:
            run = repo.start_run(conn, repo.get_directory(conn, directory_id), "schedule", "full")
        time.sleep(ledger.seconds)  # long enough for the other workers to overlap, if they could
        with rt.engine.begin() as conn:
            repo.finish_run(conn, run["id"], "succeeded", {})
        with ledger.lock:
            ledger.running_dirs[directory_id] -= 1
            ledger.running_orgs[org] -= 1
        return Outcome(run["id"], "succeeded")

    return sync_directory


def drain(rt: Runtime, workers: int) -> None:
    """Run ``workers`` workers until the queue is empty."""

    def work() -> None:
        w = Worker(rt)
        idle = 0
        while idle < 3:
            if w.run_once() is None:
                idle += 1
                time.sleep(0.02)
            else:
                idle = 0

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)


def queued(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        where = jobs_table.c.status.in_(["queued", "running"])
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(jobs_table).where(where)).scalar() or 0
        )


def test_a_thousand_due_directories_and_two_workers(
    fleet_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every directory synced exactly once for its due time, never two runs of one directory at
    once, never more than the per-organization cap of one organization at once."""
    rt, now = fleet_rt, utcnow()
    owners = make_fleet(rt, orgs=250, per_org=4, at=(now - timedelta(minutes=20)).strftime("%H:%M"))
    ledger = Ledger()
    monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, owners))
    schedules = Schedules(rt, clock=lambda: now)
    assert len(schedules.tick()) == 1000 and queued(rt) == 1000
    schedules.tick()
    assert queued(rt) == 1000  # a second tick (another worker's) adds no job: each is coalesced
    drain(rt, workers=2)
    assert Counter(d for d, _ in ledger.started) == Counter(dict.fromkeys(owners, 1))
    assert ledger.most_per_dir == 1 and ledger.most_per_org <= 2
    assert schedules.tick() == [] and queued(rt) == 0  # synced for this due time: nothing more


def test_due_times_spread_and_oldest_due_runs_first(
    fleet_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories due together start over the spread window at fixed offsets; a tick enqueues
    exactly those whose due time has passed, and one worker runs them in due order."""
    rt = fleet_rt
    slot = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    owners = make_fleet(rt, orgs=60, per_org=1, at=slot.strftime("%H:%M"), synced=slot - timedelta(hours=20))
    due = {d: slot + spread(d, SPREAD) for d in owners}
    assert len({int((t - slot).total_seconds() // 60) for t in due.values()}) >= 8  # spread, not one instant
    later = slot + timedelta(seconds=SPREAD)
    assert all(
        latest_due(later, "UTC", slot.strftime("%H:%M"), spread(d, SPREAD)) == t for d, t in due.items()
    )
    ledger = Ledger()
    monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, owners))
    clock = {"now": slot}
    schedules = Schedules(rt, clock=lambda: clock["now"])
    order: list[str] = []
    for step in range(0, int(SPREAD) + 60, 60):
        clock["now"] = slot + timedelta(seconds=step)
        fresh = [d for d, _ in schedules.tick() if d not in order]  # the others were coalesced
        assert set(fresh) == {d for d, t in due.items() if t <= clock["now"] and d not in order}
        order += sorted(fresh, key=lambda d: due[d])
    assert sorted(order) == sorted(owners)
    drain(rt, workers=1)
    started = [d for d, _ in ledger.started]
    by_tick = [int((due[d] - slot).total_seconds() // 60) for d in started]
    assert by_tick == sorted(by_tick)  # oldest due first (within a tick, the order of the queue)


def test_one_big_organization_does_not_hold_up_the_small_ones(
    fleet_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve directories of one organization queued ahead of ten single-directory ones: with
    four workers and a cap of two per organization, the small ones do not wait for the big one's
    backlog, and the big one keeps two workers busy (it is not starved either)."""
    rt = fleet_rt
    big = make_fleet(rt, orgs=1, per_org=12, at="00:00")
    small = make_fleet(rt, orgs=10, per_org=1, at="00:00")
    ledger = Ledger(seconds=0.03)
    monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, big | small))
    with rt.engine.begin() as conn:
        for d in [*big, *small]:
            jobs.enqueue_sync(conn, d, trigger="manual")
    drain(rt, workers=4)
    starts = [org for _, org in ledger.started]
    big_org = next(iter(big.values()))
    assert len(starts) == 22 and ledger.most_per_org <= 2
    first_small = min(i for i, org in enumerate(starts) if org != big_org)
    fifth_big = [i for i, org in enumerate(starts) if org == big_org][4]
    assert first_small < fifth_big  # without the cap, FIFO would start all twelve big ones first
    assert starts[:4].count(big_org) >= 1  # and the big one was not pushed to the end


def test_a_job_whose_due_time_a_run_already_covered_does_nothing(
    fleet_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two schedulers can both see a directory due while its run is under way; the second job
    finds a full run started since its due time and finishes without syncing again."""
    rt = fleet_rt
    owners = make_fleet(rt, orgs=1, per_org=1, at="00:00")
    (d,) = owners
    ledger = Ledger()
    monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, owners))
    due = utcnow() - timedelta(minutes=1)
    with rt.engine.begin() as conn:
        jobs.enqueue_sync(conn, d, trigger="schedule", full=True, due=due.isoformat())
        run = repo.start_run(conn, repo.get_directory(conn, d), "schedule", "full")  # the run under way
        repo.finish_run(conn, run["id"], "succeeded", {})
    drain(rt, workers=1)
    assert ledger.started == [] and queued(rt) == 0
    with rt.engine.begin() as conn:  # a due time after the last run is not covered: it runs
        jobs.enqueue_sync(
            conn, d, trigger="schedule", full=True, due=(utcnow() + timedelta(seconds=1)).isoformat()
        )
    drain(rt, workers=1)
    assert [x for x, _ in ledger.started] == [d]
