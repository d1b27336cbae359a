"""Entra ID sync benchmark: a tenant in the Graph emulator (its own process), measured against the
time the emulator itself needs to serve the same delta pages to a client that only reads them.

Full: ``roster sync`` of a new azure directory against one full delta round (users and groups) by
the plain client. Incremental: after ``--changes`` random changes, ``roster sync`` against the
plain client's own incremental round. Target: a ratio of at most 3.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from roster.bench.sync import cli, sync_report
from roster.connectors.graph.config import GROUP_SELECT, USER_SELECT


def run(users: int, groups: int, memberships: int, changes: int = 1000) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="roster-bench-graph-"))
    started = time.perf_counter()
    command = [sys.executable, "-m", "roster.demo.graph_serve", "--users", str(users)]
    command += ["--groups", str(groups), "--memberships", str(memberships), "--folder", str(folder)]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        results: dict[str, Any] = {
            "users": users,
            "groups": groups,
            "memberships": memberships,
            "tenant_build_seconds": round(time.perf_counter() - started, 1),
        }
        results.update(_measure(folder, info, changes))
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _measure(folder: Path, info: dict[str, Any], changes: int) -> dict[str, Any]:
    client = _Reader(info)
    serve_full, links = client.round({"users": "users/delta", "groups": "groups/delta"})
    env = {
        **os.environ,
        "ROSTER_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "ROSTER_SECRET_KEY": Fernet.generate_key().decode(),
    }
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
    directory = _directory(roster, env, folder, info)
    full_seconds, full_run, full_peak, _, counts = sync_report(roster, env, [directory, "--force"])
    httpx.post(
        f"{info['base']}/_emulator/changes", params={"count": changes, "seed": 11}, verify=client.context
    )
    serve_incremental, _ = client.round(links)
    inc_seconds, inc_run, inc_peak, kind, _ = sync_report(roster, env, [directory, "--force"])
    client.close()
    return {
        "serve_full_seconds": round(serve_full, 2),
        "full_sync_seconds": round(full_seconds, 2),
        "full_sync_run_seconds": round(full_run, 2),
        "full_sync_peak_rss_mb": full_peak,
        "full_sync_users_created": counts.get("user_created"),
        "serve_incremental_seconds": round(serve_incremental, 3),
        "incremental_seconds": round(inc_seconds, 2),
        "incremental_run_seconds": round(inc_run, 2),
        "incremental_peak_rss_mb": inc_peak,
        "incremental_kind": kind,
        "ratios_to_serving": {
            "full_sync_run": round(full_run / serve_full, 1),
            "incremental_run": round(inc_run / max(serve_incremental, 1e-3), 1),
        },
    }


def _directory(roster: str, env: dict[str, str], folder: Path, info: dict[str, Any]) -> str:
    cli(roster, env, ["init"])
    org = json.loads(cli(roster, env, ["org", "create", "Bench", "--json"]))["id"]
    (folder / "secret").write_text(info["client_secret"])
    create = ["directory", "create", "--org", org, "--type", "azure", "--name", "bench"]
    create += ["--tenant-id", info["tenant_id"], "--client-id", info["client_id"]]
    create += ["--client-secret-file", str(folder / "secret"), "--login-url", info["base"]]
    create += ["--graph-url", info["graph_url"], "--ca-file", info["ca_file"], "--json"]
    return str(json.loads(cli(roster, env, create))["id"])


class _Reader:
    """A client that only reads the delta pages: what serving them costs, the baseline."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.context = ssl.create_default_context(cafile=info["ca_file"])
        self.http = httpx.Client(verify=self.context, timeout=120)
        token = self.http.post(
            f"{info['base']}/{info['tenant_id']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "scope": "https://localhost/.default",
            },
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def round(self, starts: dict[str, str]) -> tuple[float, dict[str, str]]:
        """Seconds to read every page from each start (a path or a delta link); the delta links."""
        started = time.perf_counter()
        links = {}
        for kind, start in starts.items():
            select = USER_SELECT if kind == "users" else GROUP_SELECT
            url = (
                start
                if start.startswith("https://")
                else f"{self.info['graph_url']}/{start}?$select={select}"
            )
            while True:
                page = self.http.get(url).json()
                if "@odata.nextLink" not in page:
                    links[kind] = str(page["@odata.deltaLink"])
                    break
                url = page["@odata.nextLink"]
        return time.perf_counter() - started, links

    def close(self) -> None:
        self.http.close()
