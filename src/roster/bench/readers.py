"""API readers while a sync writes: ``GET /directory_users`` pages timed against a real ``roster serve``.

One client asks for a page of 100 users in a loop (a pause of ``interval`` between requests) for as
long as the measured command runs; the latencies of every request are kept. Readers must never
wait for the writer: SQLite in WAL mode and PostgreSQL both let them read the last commit.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0

    def summary(self) -> dict[str, float | int]:
        if not self.seconds:
            return {"requests": 0, "errors": self.errors}
        ordered = sorted(self.seconds)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {
            "requests": len(ordered),
            "errors": self.errors,
            "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(p99 * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1),
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(roster: str, env: dict[str, str]) -> Iterator[str]:
    """``roster serve`` on a free loopback port; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [roster, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("roster serve did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def reading(base: str, key: str, directory: str, interval: float = 0.05) -> Iterator[Latencies]:
    """Read pages of 100 users from ``directory`` until the block ends."""
    found = Latencies()
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.get("/directory_users", params={"directory": directory, "limit": 100})
                elapsed = time.perf_counter() - started
                if response.status_code == 200:
                    found.seconds.append(elapsed)
                else:
                    found.errors += 1
                stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(timeout=60)
