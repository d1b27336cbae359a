"""The deletion guard holds a run for approval; approve applies exactly it, reject ends it; the sync log."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from roster.accounts.service import create_account
from roster.api.app import create_app
from roster.api.sync_runner import SyncRunner
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import directory_users, mail_outbox, sync_runs
from roster.sync.scheduler import prune_sync_log
from roster.sync.worker import Worker
from tests.support.helpers import dump, ldap_directory, new_org, users_by_uid
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app


@pytest.fixture
def held(rt: Runtime, slapd: Slapd, tree: Tree) -> Iterator[tuple[str, str, list[str], httpx.Client]]:
    org = new_org(rt)
    with rt.engine.begin() as conn:
        create_account(conn, org, "boss@example.com", role="admin")
        _, key = repo.create_api_key(conn, org, "admin")
    dns = [tree.add_user(f"user{i}") for i in range(20)]
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    for dn in dns[:12]:
        tree.delete(dn)
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
    ):
        yield org, d, dns, http


def test_held_run_is_approved_and_applies_exactly_that(
    rt: Runtime, held: tuple[str, str, list[str], httpx.Client]
) -> None:
    _, d, _, http = held
    before = dump(rt)
    result = sync_directory(rt, d)
    assert result.status == "pending_approval"
    assert {k: v for k, v in dump(rt).items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"
    }
    with rt.engine.connect() as conn:
        mails = conn.execute(
            sa.select(mail_outbox.c.subject).where(mail_outbox.c.kind == "approval_needed")
        ).all()
    assert len(mails) == 1 and "would deactivate 12 users" in mails[0][0]
    held_log = http.get(
        "/api/v1/sync_log", params={"directory_id": d, "run_id": result.run_id, "change": "user_removed"}
    ).json()["data"]
    assert len(held_log) == 12  # the exact list it would deactivate
    approved = http.post(f"/api/v1/sync_runs/{result.run_id}/approve")
    assert approved.status_code == 202
    assert http.post(f"/api/v1/sync_runs/{result.run_id}/approve").status_code == 409  # decided already
    assert (
        SyncRunner(rt).wait(approved.json()["job_id"], timeout=60)["status"] == "done"
    )  # the server's worker
    users = users_by_uid(rt, d)
    assert sum(1 for u in users.values() if u["state"] == "inactive") == 12


def test_approval_of_a_stale_plan_replans(
    rt: Runtime, tree: Tree, held: tuple[str, str, list[str], httpx.Client]
) -> None:
    _, d, dns, http = held
    result = sync_directory(rt, d)
    assert result.status == "pending_approval"
    tree.delete(dns[12])  # the directory changed since: one more leaves
    job_id = http.post(f"/api/v1/sync_runs/{result.run_id}/approve").json()["job_id"]
    assert SyncRunner(rt).wait(job_id, timeout=60)["status"] == "done"
    with rt.engine.connect() as conn:
        runs = repo.list_runs(conn, d)
    assert (
        runs[0]["status"] == "pending_approval" and runs[0]["id"] != result.run_id
    )  # held again, re-planned
    assert sum(1 for u in users_by_uid(rt, d).values() if u["state"] == "inactive") == 0


def test_rejected_runs_never_apply(rt: Runtime, held: tuple[str, str, list[str], httpx.Client]) -> None:
    _, d, _, http = held
    result = sync_directory(rt, d)
    rejected = http.post(f"/api/v1/sync_runs/{result.run_id}/reject").json()
    assert rejected["status"] == "rejected"
    assert Worker(rt).run_once() is None  # nothing queued
    assert sum(1 for u in users_by_uid(rt, d).values() if u["state"] == "inactive") == 0


def test_sync_log_filters_and_retention(rt: Runtime, held: tuple[str, str, list[str], httpx.Client]) -> None:
    from datetime import timedelta

    from roster.store.db import utcnow

    _, d, _, http = held
    everything = http.get("/api/v1/sync_log", params={"directory_id": d, "limit": 1000}).json()["data"]
    created = http.get("/api/v1/sync_log", params={"directory_id": d, "change": "user_created"}).json()[
        "data"
    ]
    assert len(created) == 20 and len(everything) > 20
    one = created[0]["object_id"]
    assert {
        e["object_id"]
        for e in http.get("/api/v1/sync_log", params={"directory_id": d, "object_id": one}).json()["data"]
    } == {one}
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert http.get("/api/v1/sync_log", params={"directory_id": d, "since": future}).json()["data"] == []
    bad = http.get("/api/v1/sync_log", params={"directory_id": d, "since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["message"].startswith("since:")
    assert prune_sync_log(rt) == 0
    assert prune_sync_log(rt, now=utcnow() + timedelta(days=11)) == len(everything)


def test_a_decided_run_says_so_and_its_counts_agree_with_the_guard(
    rt: Runtime, held: tuple[str, str, list[str], httpx.Client]
) -> None:
    _, d, _, http = held
    with rt.engine.begin() as conn:  # one user already inactive: removed, but not a deactivation
        conn.execute(
            sa.update(directory_users)
            .where(directory_users.c.directory_id == d, directory_users.c.username == "user0")
            .values(state="inactive")
        )
    result = sync_directory(rt, d)
    assert result.status == "pending_approval"
    assert result.counts["user_removed"] == 12 and result.counts["deactivated"] == 11
    assert "would deactivate 11 of" in (result.error or "")
    with rt.engine.connect() as conn:
        body = conn.execute(
            sa.select(mail_outbox.c.body).where(mail_outbox.c.kind == "approval_needed")
        ).scalar()
    assert "<user1@example.com>" in body and "user0@" not in body  # names and e-mails, not ids
    assert http.post(f"/api/v1/sync_runs/{result.run_id}/approve").status_code == 202
    run = http.get(f"/api/v1/sync_runs/{result.run_id}").json()
    assert run["status"] == "approved"


def test_a_dry_run_never_holds_and_stays_apart(
    rt: Runtime, held: tuple[str, str, list[str], httpx.Client]
) -> None:
    _, d, _, http = held
    dry = sync_directory(rt, d, dry_run=True)
    assert dry.status == "succeeded" and dry.kind == "dry_run" and dry.counts["would_be_held"] == 1
    with rt.engine.connect() as conn:
        held_runs = conn.execute(
            sa.select(sa.func.count()).select_from(sync_runs).where(sync_runs.c.status == "pending_approval")
        ).scalar()
        mails = conn.execute(
            sa.select(sa.func.count()).select_from(mail_outbox).where(mail_outbox.c.kind == "approval_needed")
        ).scalar()
    assert held_runs == 0 and mails == 0  # nothing waits for an approval, nobody is asked
    log = http.get("/api/v1/sync_log", params={"directory_id": d, "change": "user_removed"}).json()["data"]
    assert log == []  # what the dry run planned is not in the default view
    planned = http.get(
        "/api/v1/sync_log", params={"directory_id": d, "change": "user_removed", "include_dry_runs": "true"}
    ).json()["data"]
    assert len(planned) == 12
    with rt.engine.begin() as conn:
        _, admin_key = repo.create_api_key(conn, None, "operator")
    metrics = http.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"}).text
    assert 'roster_sync_runs{status="succeeded"} 1.0' in metrics  # the first sync only
    with rt.engine.connect() as conn:
        assert d not in repo.held_directories(conn)  # schedules and near-real-time go on
    real = sync_directory(rt, d)
    assert real.status == "pending_approval"
    with rt.engine.connect() as conn:
        assert d in repo.held_directories(conn)  # a real run is held, and waits
