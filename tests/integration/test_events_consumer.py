"""A consumer polling GET /events while syncs commit concurrently sees every event once, in order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from roster.api.app import create_app
from roster.store import repo
from roster.store.schema import events
from roster.sync.pipeline import run_sync
from tests.conftest import _postgres_schema_url, make_runtime
from tests.integration.test_store import StaticConnector, people
from tests.support.servers import serve_app

TYPES = "dsync.user.created,dsync.user.updated,dsync.user.deleted,dsync.activated"


@pytest.fixture
def pg_url() -> object:
    yield from _postgres_schema_url()


def test_polling_consumer_misses_and_repeats_nothing(pg_url: str, tmp_path: Path) -> None:
    rt = make_runtime(pg_url, tmp_path)
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
        _, key = repo.create_api_key(conn, org, "consumer")
        dirs = [
            repo.create_directory(
                conn,
                org,
                f"d{i}",
                "ldap",
                {"url": "ldap://x", "bind_dn": "cn=x", "search_paths": ["DC=x"]},
                None,
            )["id"]
            for i in range(3)
        ]
    done = threading.Event()
    seen: list[str] = []

    def writer(directory_id: str, offset: int) -> None:
        for size in (300, 320, 280, 330):  # creates, then updates and removals (forced past the guard)
            snap = people(size, title=f"t{size}")
            assert run_sync(rt.engine, directory_id, StaticConnector(snap), force=True).ok
            time.sleep(0.01 * offset)

    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
    ):

        def consume() -> None:
            after: str | None = None
            idle_after_done = 0
            while idle_after_done < 3:
                params = {"events": TYPES, "limit": 100, **({"after": after} if after else {})}
                page = http.get("/events", params=params).json()
                ids = [e["id"] for e in page["data"]]
                seen.extend(ids)
                if ids:
                    after = ids[-1]
                elif done.is_set():
                    idle_after_done += 1
                time.sleep(0.005)

        consumer = threading.Thread(target=consume)
        consumer.start()
        writers = [threading.Thread(target=writer, args=(d, i)) for i, d in enumerate(dirs)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        done.set()
        consumer.join(120)
    with rt.engine.connect() as conn:
        stored = list(conn.execute(sa.select(events.c.id).order_by(events.c.id)).scalars())
    assert len(stored) > 1000
    assert seen == stored  # every event, exactly once, in order
    rt.engine.dispose()
