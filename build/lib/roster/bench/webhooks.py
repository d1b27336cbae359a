"""Webhook delivery throughput to a loopback receiver, and latency from commit to receipt.

Targets (issue 5): more than 1,000 deliveries per second with 50 endpoints; p99 latency
from the commit of a sync to the webhook arriving under 1 s while the deliverer is idle.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet

from roster.demo.slapd import free_port
from roster.events import endpoints
from roster.events.outbox import Outbox
from roster.events.webhooks import Deliverer
from roster.runtime import open_runtime
from roster.settings import Settings
from roster.store import repo
from roster.store.db import utcnow


@contextmanager
def _sink() -> Iterator[str]:
    """The receiver runs in its own process, so it does not compete with Roster for the GIL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "roster.bench.sink", str(port)])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{base}/count", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _write_events(rt: Any, org: str, directory: str, count: int) -> list[str]:
    with rt.engine.begin() as conn:
        box = Outbox(conn, org, directory, utcnow())
        for i in range(count):
            box.add(
                "dsync.user.updated", json.dumps({"object": "directory_user", "id": f"directory_user_{i}"})
            )
        box.flush()
        rows = conn.execute(
            sa.text("select id from events order by id desc limit :n"), {"n": count}
        ).scalars()
        return list(rows)


def run(
    endpoints_count: int = 50, events_count: int = 200, database_url: str | None = None
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="roster-bench-"))
    url = database_url or f"sqlite:///{folder / 'bench.db'}"
    rt = open_runtime(
        Settings(
            database_url=url,
            secret_key=Fernet.generate_key().decode(),
            webhook_allow_private=True,
            webhook_workers=16,
        )
    )
    with _sink() as base, httpx.Client(base_url=base) as probe:
        with rt.engine.begin() as conn:
            org = repo.create_organization(conn, "Bench")["id"]
            directory = repo.create_directory(
                conn, org, "d", "ldap", {"url": "ldap://x", "bind_dn": "cn=x", "search_paths": ["DC=x"]}, None
            )["id"]
        for _ in range(endpoints_count):
            endpoints.create(rt, org, f"{base}/hook", None)
        _write_events(rt, org, directory, events_count)
        deliverer = Deliverer(rt)
        expected = endpoints_count * events_count
        started = time.perf_counter()
        while int(probe.get("/count").text) < expected:
            deliverer.run_once()
        throughput = expected / (time.perf_counter() - started)

        # Latency while idle: one event at a time, the deliverer polling as `roster serve` runs it.
        for endpoint_id in endpoints_list(rt, org)[1:]:
            endpoints.delete(rt, endpoint_id)
        thread = threading.Thread(target=deliverer.run_forever, daemon=True)
        thread.start()
        latencies = []
        for _ in range(100):
            committed = time.time()
            (event_id,) = _write_events(rt, org, directory, 1)
            while (seen := probe.get(f"/seen/{event_id}")).status_code != 200:
                time.sleep(0.002)
            latencies.append(float(seen.text) - committed)
            time.sleep(0.02)
        deliverer.stop()
        thread.join(5)
    latencies.sort()
    return {
        "endpoints": endpoints_count,
        "events": events_count,
        "deliveries_per_second": round(throughput, 1),
        "target_deliveries_per_second": 1000,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "target_latency_p99_ms": 1000,
        "database": url.split(":", 1)[0],
    }


def endpoints_list(rt: Any, org: str) -> list[str]:
    with rt.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("select id from webhook_endpoints where organization_id = :o order by id"), {"o": org}
            ).scalars()
        )
