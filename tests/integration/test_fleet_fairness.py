"""Fair scheduling of many directories, with an injected clock for the schedules and a stand-in
for the sync itself (it records who ran when, and writes the run as a real sync would): real
workers claiming real jobs from SQLite and PostgreSQL. Properties, not timings."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
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
    clock: Callable[[], datetime] = utcnow  # the injected clock each start is read from
    started_at: dict[str, datetime] = field(default_factory=dict)
    die_after: int | None = None  # the "doomed" worker dies (as if SIGKILLed) after this many runs
    doomed_runs: int = 0


class Killed(BaseException):
    """The worker process is gone: nothing after this point of its run happens (no finish, no
    release), as after a SIGKILL; the thread simply stops."""


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
            ledger.started_at.setdefault(directory_id, ledger.clock())
            ledger.running_dirs[directory_id] += 1
            ledger.running_orgs[org] += 1
            ledger.most_per_dir = max(ledger.most_per_dir, ledger.running_dirs[directory_id])
            ledger.most_per_org = max(ledger.most_per_org, ledger.running_orgs[org])
        with rt.engine.begin() as conn:
            run = repo.start_run(conn, repo.get_directory(conn, directory_id), "schedule", "full")
        if threading.current_thread().name == "doomed" and ledger.doomed_runs == ledger.die_after:
            with ledger.lock:
                ledger.running_dirs[directory_id] -= 1
                ledger.running_orgs[org] -= 1
            raise Killed
        if threading.current_thread().name == "doomed":
            ledger.doomed_runs += 1
        time.sleep(ledger.seconds)  # long enough for the other workers to overlap, if they could
        with rt.engine.begin() as conn:
            repo.finish_run(conn, run["id"], "succeeded", {})
        with ledger.lock:
            ledger.running_dirs[directory_id] -= 1
            ledger.running_orgs[org] -= 1
        return Outcome(run["id"], "succeeded")

    return sync_directory


def drain(rt: Runtime, workers: int, doomed: bool = False) -> None:
    """Run ``workers`` workers until no job is queued or running (a dead worker's job counts as
    running until its lease lapses and another worker redoes it); ``doomed`` adds one that dies."""

    def work() -> None:
        w = Worker(rt)
        try:
            while True:
                if w.run_once() is None:
                    if queued(rt) == 0:
                        return
                    time.sleep(0.02)
        except Killed:
            return

    threads = [threading.Thread(target=work) for _ in range(workers)]
    threads += [threading.Thread(target=work, name="doomed")] if doomed else []
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "the queue did not drain in 300 s"


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
    assert started == sorted(owners, key=lambda d: due[d])  # oldest due first, across and within ticks


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


def test_no_job_waits_longer_than_the_bound_when_capacity_allows(
    fleet_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented bound: a due directory's job is queued by the first scheduler tick at or
    after its due time and taken by a free worker's next poll. Here the clock moves one tick (10 s)
    at a time and two workers drain the queue between ticks (capacity allows): 300 directories of
    100 organizations, spread over the window, each start less than one tick after its due time,
    within the per-organization cap, every directory once. (The worker-poll half of the bound is
    not timed here: the clock stands still while the workers drain.)"""
    rt, step = fleet_rt, timedelta(seconds=10)
    slot = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    owners = make_fleet(rt, orgs=100, per_org=3, at=slot.strftime("%H:%M"), synced=slot - timedelta(hours=20))
    due = {d: slot + spread(d, SPREAD) for d in owners}
    clock = {"now": slot}
    ledger = Ledger(clock=lambda: clock["now"])
    monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, owners))
    schedules = Schedules(rt, clock=lambda: clock["now"])
    while clock["now"] <= slot + timedelta(seconds=SPREAD) + step:
        schedules.tick()
        drain(rt, workers=2)
        clock["now"] += step
    assert Counter(d for d, _ in ledger.started) == Counter(dict.fromkeys(owners, 1))
    waits = [ledger.started_at[d] - due[d] for d in owners]
    assert all(timedelta(0) <= w < step for w in waits), max(waits)
    assert ledger.most_per_dir == 1 and ledger.most_per_org <= 2


def test_a_worker_killed_mid_fleet_loses_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 directories due at once, two workers and a third that dies (as if SIGKILLed) in the
    middle of its third run: its directory's job is redone by another worker once its lease lapses,
    its abandoned run is marked failed (nothing applied), and every directory ends with exactly one
    successful run for the due time."""
    rt = make_runtime(database_url, tmp_path, job_lease_seconds=1.0, jobs_per_organization=2)
    try:
        now = utcnow()
        owners = make_fleet(rt, orgs=100, per_org=2, at=(now - timedelta(minutes=20)).strftime("%H:%M"))
        ledger = Ledger(die_after=2)
        monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, owners))
        assert len(Schedules(rt, clock=lambda: now).tick()) == 200
        drain(rt, workers=2, doomed=True)
        assert ledger.doomed_runs == 2  # it did some of the work, then died
        with rt.engine.connect() as conn:
            runs = conn.execute(
                sa.select(sync_runs.c.directory_id, sync_runs.c.status, sync_runs.c.error_reason)
            ).all()
            redone = (
                conn.execute(sa.select(jobs_table.c.directory_id).where(jobs_table.c.attempts > 1))
                .scalars()
                .all()
            )
        assert Counter(d for d, status, _ in runs if status == "succeeded") == Counter(
            dict.fromkeys(owners, 1)
        )
        lost = [d for d, status, reason in runs if status == "failed"]
        assert len(lost) == 1 and [r for _, s, r in runs if s == "failed"] == ["worker_lost"]
        assert redone == lost  # the dead worker's job, and only it, ran a second time
        assert ledger.most_per_dir == 1 and queued(rt) == 0
    finally:
        rt.engine.dispose()


def test_a_sync_somebody_asked_for_goes_before_the_scheduled_backlog(
    fleet_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty scheduled runs are queued when an administrator asks for a sync of another directory,
    and of one whose scheduled run is already queued (it is promoted, not queued twice, and runs
    even though a run by hand already covered its schedule): with one worker both run first, then
    the backlog in its order."""
    rt = fleet_rt
    owners = make_fleet(rt, orgs=42, per_org=1, at="00:00")
    backlog, (asked, promoted) = list(owners)[:40], list(owners)[40:]
    ledger = Ledger()
    monkeypatch.setattr(worker_module, "sync_directory", stand_in(ledger, owners))
    due = (utcnow() - timedelta(minutes=5)).isoformat()
    with rt.engine.begin() as conn:
        for d in [*backlog, promoted]:
            jobs.enqueue_sync(conn, d, trigger="schedule", full=True, due=due)
        covered = repo.start_run(conn, repo.get_directory(conn, promoted), "cli", "full")  # since due
        repo.finish_run(conn, covered["id"], "succeeded", {})
        jobs.enqueue_sync(conn, asked, trigger="console")
        jobs.enqueue_sync(conn, promoted, trigger="api")  # asked for: it runs though the schedule is covered
    assert queued(rt) == 42
    drain(rt, workers=1)
    assert [d for d, _ in ledger.started] == [promoted, asked, *backlog]


def test_metrics_say_how_long_the_oldest_queued_job_has_waited(fleet_rt: Runtime) -> None:
    """``roster_jobs_oldest_queued_seconds``: the number to alert on when workers fall behind."""
    from roster.api.observability import StoreCollector

    def oldest() -> float:
        (family,) = [
            m for m in StoreCollector(fleet_rt).collect() if m.name == "roster_jobs_oldest_queued_seconds"
        ]
        return float(family.samples[0].value)

    (d,) = make_fleet(fleet_rt, orgs=1, per_org=1, at="00:00")
    assert oldest() == 0.0
    with fleet_rt.engine.begin() as conn:
        job = jobs.enqueue_sync(conn, d, trigger="schedule", full=True)
        conn.execute(
            sa.update(jobs_table)
            .where(jobs_table.c.id == job)
            .values(created_at=utcnow() - timedelta(seconds=90))
        )
    assert 90 <= oldest() < 150
