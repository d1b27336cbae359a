"""SCIM benchmark: Roster's endpoint next to the python-scim project's ``scim2-server`` (an
in-memory SCIM server), both in their own process on loopback, driven by the same client in the
same run. Measured, each as requests per second from one client: user creates, filtered lookups
(``userName eq``), and group PATCHes of 100 member operations. Target: at least 10 times
scim2-server on each.

scim2-server is a development dependency (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet

from roster.bench.sync import cli
from roster.demo.slapd import free_port

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TOKEN = "bench-token"


def run(
    users: int = 1000, lookups: int = 1000, patches: int = 100, postgres_url: str | None = None
) -> dict[str, Any]:
    results: dict[str, Any] = {"users": users, "lookups": lookups, "patches": patches}
    with _scim2_server() as base:
        results["scim2_server"] = _measure(base, TOKEN, users, lookups, patches)
    stores = {"sqlite": None, "postgresql": postgres_url} if postgres_url else {"sqlite": None}
    for store, url in stores.items():
        with _roster(url) as (base, token):
            measured = _measure(base, token, users, lookups, patches)
        reference = results["scim2_server"]
        measured["times_scim2_server"] = {
            k: round(measured[k] / reference[k], 2)
            for k in ("creates_per_second", "lookups_per_second", "patches_per_second")
        }
        results[store] = measured
    return results


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{url} did not start") from None
            time.sleep(0.1)


@contextmanager
def _scim2_server() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "scim2_server.testserver.cli", "--hostname", "127.0.0.1"]
    command += ["--port", str(port), "--bearer-token", TOKEN]
    executable = shutil.which("scim2-server", path=str(Path(sys.executable).parent))
    if executable:
        command = [executable, *command[3:]]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/ServiceProviderConfig", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def _roster(postgres_url: str | None) -> Iterator[tuple[str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="roster-bench-scim-"))
    port = free_port()
    schema = f"roster_bench_{os.getpid()}_{port}"
    database = f"sqlite:///{folder / 'bench.db'}"
    if postgres_url:
        with sa.create_engine(postgres_url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in postgres_url else "?"
        database = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    env = {
        **os.environ,
        "ROSTER_DATABASE_URL": database,
        "ROSTER_SECRET_KEY": Fernet.generate_key().decode(),
        "ROSTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
    org = json.loads(cli(roster, env, ["org", "create", "Bench", "--json"]))["id"]
    made = cli(roster, env, ["directory", "create", "--org", org, "--type", "scim", "--name", "b", "--json"])
    directory = json.loads(made)
    proc = subprocess.Popen(
        [roster, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", proc)
        yield directory["scim_base_url"], directory["scim_token"]
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
        if postgres_url:
            with sa.create_engine(postgres_url).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def _measure(base: str, token: str, users: int, lookups: int, patches: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    rng = random.Random(5)
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        names = [f"user{i:06d}@example.com" for i in range(users)]
        ids = []
        started = time.perf_counter()
        for name in names:
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "name": {"givenName": "Bench", "familyName": name[:10]},
                "emails": [{"value": name, "type": "work", "primary": True}],
                "active": True,
            }
            response = client.post("/Users", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
        create_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(lookups):
            name = rng.choice(names)
            found = client.get("/Users", params={"filter": f'userName eq "{name}"'}).json()
            assert found["totalResults"] == 1, found
        lookup_seconds = time.perf_counter() - started
        group = client.post(
            "/Groups",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"},
        )
        group.raise_for_status()
        gid = group.json()["id"]
        started = time.perf_counter()
        for i in range(patches):
            start = (i // 2 * 100) % max(1, users - 100)
            chunk = ids[start : start + 100]
            if i % 2 == 0:
                ops = [{"op": "add", "path": "members", "value": [{"value": m}]} for m in chunk]
            else:
                ops = [{"op": "remove", "path": f'members[value eq "{m}"]'} for m in chunk]
            client.patch(f"/Groups/{gid}", json={"schemas": [PATCH], "Operations": ops}).raise_for_status()
        patch_seconds = time.perf_counter() - started
    return {
        "creates_per_second": _rate(users, create_seconds),
        "lookups_per_second": _rate(lookups, lookup_seconds),
        "patches_per_second": _rate(patches, patch_seconds),
    }
