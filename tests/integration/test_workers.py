"""Several real `roster worker` processes sharing PostgreSQL: parallel syncs, kill -9, no double syncs."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from roster.demo.generate import Spec, write_ldif
from roster.demo.slapd import Slapd
from roster.runtime import Runtime, open_runtime
from roster.settings import Settings
from roster.store import jobs
from roster.store.schema import directory_users, sync_runs
from roster.store.schema import jobs as jobs_table
from tests.conftest import _postgres_schema_url
from tests.support.helpers import ldap_directory, new_org

ROSTER = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
USERS = 3000


@pytest.fixture(scope="module")
def big_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("workers-slapd"))
    server.configure()
    with (server.folder / "d.ldif").open("w") as out:
        write_ldif(Spec(users=USERS, groups=20, no_email_share=0, disabled_share=0), out)
    server.load(server.folder / "d.ldif")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_rt() -> Iterator[tuple[Runtime, str, str]]:
    key = Fernet.generate_key().decode()
    for url in _postgres_schema_url():
        rt = open_runtime(Settings(database_url=url, secret_key=key, job_lease_seconds=3))
        yield rt, url, key
        rt.engine.dispose()


def test_workers_share_the_queue_survive_kill_and_never_double_sync(
    pg_rt: tuple[Runtime, str, str], big_slapd: Slapd, tmp_path: Path
) -> None:
    rt, url, key = pg_rt
    org = new_org(rt)
    dirs = [
        ldap_directory(
            rt, org, big_slapd.url, big_slapd.admin_dn, big_slapd.admin_password, ["DC=example, DC=com"]
        )
        for _ in range(6)
    ]
    with rt.engine.begin() as conn:
        for d in dirs:
            jobs.enqueue_sync(conn, d, trigger="test")
        assert jobs.enqueue_sync(conn, dirs[0], trigger="again") == jobs.enqueue_sync(
            conn, dirs[0]
        )  # coalesced
    env = {
        **os.environ,
        "ROSTER_DATABASE_URL": url,
        "ROSTER_SECRET_KEY": key,
        "ROSTER_JOB_LEASE_SECONDS": "3",
        "ROSTER_JOBS_PER_ORGANIZATION": "3",  # one organization's six directories: every worker may take one
    }
    workers = [
        subprocess.Popen(
            [ROSTER, "worker"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    try:
        victim_name = None
        deadline = time.monotonic() + 60
        while victim_name is None and time.monotonic() < deadline:
            with rt.engine.connect() as conn:
                running = conn.execute(
                    sa.select(jobs_table.c.owner, jobs_table.c.directory_id).where(
                        jobs_table.c.status == "running"
                    )
                ).all()
                started = set(
                    conn.execute(
                        sa.select(sync_runs.c.directory_id).where(sync_runs.c.status == "running")
                    ).scalars()
                )
                for owner, directory_id in running:
                    pid = int(str(owner).split(":")[1])
                    if pid == workers[0].pid and directory_id in started:  # its run has begun
                        victim_name = owner
            time.sleep(0.02)
        assert victim_name is not None, "the first worker never took a job"
        workers[0].send_signal(signal.SIGKILL)  # mid-sync
        workers[0].wait(10)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with rt.engine.connect() as conn:
                open_jobs = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs_table)
                    .where(jobs_table.c.status.in_(["queued", "running"]))
                ).scalar()
            if open_jobs == 0:
                break
            time.sleep(0.2)
        assert open_jobs == 0, "jobs did not finish"
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            assert w.stderr is not None
            w.stderr.close()
            w.wait(30)

    with rt.engine.connect() as conn:
        all_jobs = conn.execute(sa.select(jobs_table)).mappings().all()
        runs = conn.execute(sa.select(sync_runs).order_by(sync_runs.c.started_at)).mappings().all()
        counts = dict(
            conn.execute(
                sa.select(directory_users.c.directory_id, sa.func.count()).group_by(
                    directory_users.c.directory_id
                )
            ).all()
        )
    assert {j["status"] for j in all_jobs} == {"done"}
    assert any(j["attempts"] == 2 for j in all_jobs)  # the killed worker's job was redone by another
    assert {d: counts.get(d) for d in dirs} == {d: USERS for d in dirs}  # everything applied, once
    abandoned = [r for r in runs if r["error_reason"] == "worker_lost"]
    assert len(abandoned) == 1
    by_directory: dict[str, list[dict[str, object]]] = {}
    for run in runs:
        by_directory.setdefault(run["directory_id"], []).append(dict(run))
    for directory_runs in by_directory.values():  # never two runs of one directory at once
        for earlier, later in itertools.pairwise(directory_runs):
            assert earlier["finished_at"] is not None and earlier["finished_at"] <= later["started_at"]
    owners = {r.get("owner") for r in all_jobs}
    assert len(owners) >= 2  # the work was shared


def test_a_worker_that_lost_its_lease_applies_nothing(sqlite_rt: Runtime, big_slapd: Slapd) -> None:
    from roster.store.schema import directories
    from roster.sync.pipeline import Phase
    from roster.sync.worker import Worker

    rt = sqlite_rt
    d = ldap_directory(
        rt, new_org(rt), big_slapd.url, big_slapd.admin_dn, big_slapd.admin_password, ["DC=example, DC=com"]
    )
    with rt.engine.begin() as conn:
        jobs.enqueue_sync(conn, d, trigger="test")
    worker = Worker(rt, name="slow-worker")
    import roster.sync.worker as worker_module

    real = worker_module.sync_directory

    def stolen_midway(*args: object, **kwargs: object) -> object:
        def steal(_n: int) -> None:  # while reading, another worker takes the directory over
            with rt.engine.begin() as conn:
                conn.execute(sa.update(directories).where(directories.c.id == d).values(lease_owner="other"))

        return real(*args, progress=Phase(read=steal), **kwargs)  # type: ignore[arg-type]

    worker_module.sync_directory = stolen_midway  # type: ignore[assignment]
    try:
        worker.run_once()
    finally:
        worker_module.sync_directory = real
    with rt.engine.connect() as conn:
        (run,) = conn.execute(sa.select(sync_runs).where(sync_runs.c.directory_id == d)).mappings().all()
        count = conn.execute(sa.select(sa.func.count()).select_from(directory_users)).scalar()
    assert (run["status"], run["error_reason"], count) == ("cancelled", "lease_lost", 0)
