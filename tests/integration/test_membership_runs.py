"""Membership events stored as runs (one row per group, kind and transaction) read exactly as the
events of one row each: same order and payloads, ids that grow in commit order, cursors that land
between two memberships of one group, webhooks that resume inside a run after a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from workos import WorkOSClient

from roster.api.app import create_app
from roster.connectors.memory import MemoryDirectory
from roster.events import endpoints
from roster.events.webhooks import Deliverer, backlog
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import events, webhook_endpoints
from roster.sync.pipeline import run_sync
from tests.conftest import make_runtime
from tests.integration.test_ingest import _stable, memory_directory
from tests.support.helpers import event_list, new_org
from tests.support.receiver import receiver
from tests.support.servers import serve_app

MEMBERSHIP = "dsync.group.user_added"


def company() -> MemoryDirectory:
    source = MemoryDirectory()
    for i in range(30):
        source.put_user(f"p{i:02}", {"mail": [f"p{i:02}@example.com"], "displayName": [f"P{i:02}"]})
    source.put_group("big", {"cn": ["Big"]})
    source.put_group("small", {"cn": ["Small"]})
    for i in range(25):
        source.add_member("big", f"p{i:02}")
    for i in range(25, 30):
        source.add_member("small", f"p{i:02}")
    return source


def synced(rt: Runtime, org: str | None = None) -> str:
    d = memory_directory(rt, org)
    assert run_sync(rt.engine, d, company()).ok
    return d


def test_runs_read_as_one_row_per_membership(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced(rt)
    with monkeypatch.context() as m:  # the storage before runs: one row per membership
        m.setattr("roster.events.outbox.RUN_MAX", 1)
        old = make_runtime(f"sqlite:///{tmp_path / 'rows.db'}", tmp_path)
        synced(old)
    new_events, old_events = event_list(rt), event_list(old)
    assert [(e["event"], _stable(e["data"])) for e in new_events] == [
        (e["event"], _stable(e["data"])) for e in old_events
    ]
    ids = [e["id"] for e in new_events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert sum(1 for e in new_events if e["event"] == MEMBERSHIP) == 30
    with rt.engine.connect() as conn, old.engine.connect() as old_conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
        old_rows = old_conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
    assert old_rows == len(old_events) and rows == len(new_events) - 30 + 2  # two groups, two runs
    old.engine.dispose()


@pytest.fixture
def api(rt: Runtime) -> Iterator[tuple[httpx.Client, str, str]]:
    org = new_org(rt)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org, "host app")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
    ):
        yield http, org, key


def page_ids(http: httpx.Client, **params: Any) -> tuple[list[str], dict[str, Any]]:
    body = http.get("/events", params={"events": MEMBERSHIP, "limit": 4, **params}).json()
    return [e["id"] for e in body["data"]], body["list_metadata"]


def test_cursors_land_between_two_memberships_of_one_group(
    rt: Runtime, api: tuple[httpx.Client, str, str]
) -> None:
    http, org, key = api
    synced(rt, org)
    every = [e["id"] for e in event_list(rt, MEMBERSHIP)]
    seen, after = [], None
    while True:  # forwards, four at a time: every page but the last ends inside the 25-member run
        ids, meta = page_ids(http, order="asc", **({"after": after} if after else {}))
        seen += ids
        after = meta["after"]
        if after is None:
            break
    assert seen == every
    back, before = [], every[-1]
    while before is not None:  # and back again from the newest
        ids, meta = page_ids(http, order="asc", before=before)
        back = ids + back
        before = meta["before"]
    assert back == every[:-1]
    newest_first, _ = page_ids(http, order="desc", after=every[10])
    assert newest_first == list(reversed(every[6:10]))
    sdk = WorkOSClient(api_key=key, client_id="unused", base_url=str(http.base_url))
    try:  # the host application's own client reads the same cursors
        listed = sdk.events.list_events(events=[MEMBERSHIP], after=every[3], limit=5)  # type: ignore[list-item]
    finally:
        sdk.close()
    assert [e.id for e in listed.data] == every[4:9]


def test_webhooks_resume_inside_a_run_after_a_restart(tmp_path: Path) -> None:
    rt = make_runtime(f"sqlite:///{tmp_path / 'hooks.db'}", tmp_path, webhook_allow_private=True)
    with receiver() as hook:
        org = new_org(rt)
        endpoint = endpoints.create(rt, org, hook.url, [MEMBERSHIP])
        synced(rt, org)
        every = [e["id"] for e in event_list(rt, MEMBERSHIP)]
        hook.script = [(200, 0, {})] * 9 + [(500, 0, {})]  # the tenth fails: delivery stops there
        Deliverer(rt).run_once()
        with rt.engine.connect() as conn:
            row = endpoints.get(conn, endpoint["id"])
            assert row["cursor"] == every[8] and "." in row["cursor"]  # inside the 25-member run
            assert backlog(conn, row) == len(every) - 9
        with rt.engine.begin() as conn:  # a new deliverer (a restart): due at once
            conn.execute(sa.update(webhook_endpoints).values(next_attempt_at=None, lease_until=None))
        Deliverer(rt).run_once()
        assert hook.ids() == every  # each once, in order, none skipped
        assert json.loads(hook.received[9].body)["data"]["user"]["email"] == "p09@example.com"
        with rt.engine.connect() as conn:
            assert backlog(conn, endpoints.get(conn, endpoint["id"])) == 0
    rt.engine.dispose()


def test_an_endpoint_made_after_a_run_starts_after_its_last_membership(rt: Runtime) -> None:
    org = new_org(rt)
    synced(rt, org)
    rt.settings.webhook_allow_private = True  # type: ignore[misc]
    endpoint = endpoints.create(rt, org, "http://127.0.0.1:9/hooks", None)
    every = [e["id"] for e in event_list(rt)]
    with rt.engine.connect() as conn:
        row = endpoints.get(conn, endpoint["id"])
        assert row["cursor"] == every[-1] and backlog(conn, row) == 0
