"""Agent benchmark: the first sync of a generated directory through the on-prem agent, against the
same first sync done directly, in the same run on the same slapd. Target: at most 1.3 times.

Direct: ``roster sync`` of an ``ldap`` directory. Through the agent: ``roster serve`` and a
``roster agent run`` process, then ``roster sync`` of a ``--connection agent`` directory (it queues
the task, the agent reads slapd and uploads the batch, the sync ingests it). Each store is a fresh
SQLite file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from roster.bench.sync import cli, sync_report
from roster.demo.generate import Spec, write_ldif
from roster.demo.slapd import Slapd, free_port


def run(users: int, groups: int, memberships: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="roster-bench-agent-"))
    spec = Spec(users=users, groups=groups, memberships=memberships, seed=7)
    server = Slapd(folder / "slapd")
    server.configure()
    with (folder / "directory.ldif").open("w") as fh:
        write_ldif(spec, fh)
    server.load(folder / "directory.ldif")
    server.start()
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
    (folder / "bind-password").write_text(server.admin_password)
    try:
        direct = _direct(roster, folder, server, spec)
        through = _through_agent(roster, folder, server, spec)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "users": users,
        "groups": groups,
        "memberships": memberships,
        "direct": direct,
        "agent": through,
        "agent_to_direct": round(through["full_sync_seconds"] / direct["full_sync_seconds"], 2),
    }


def _env(folder: Path, name: str, port: int = 8000) -> dict[str, str]:
    return {
        **os.environ,
        "ROSTER_DATABASE_URL": f"sqlite:///{folder / name}.db",
        "ROSTER_SECRET_KEY": Fernet.generate_key().decode(),
        "ROSTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }


def _report(roster: str, env: dict[str, str], directory: str) -> dict[str, Any]:
    seconds, run_seconds, peak, _, counts = sync_report(roster, env, [directory, "--force"])
    return {
        "full_sync_seconds": round(seconds, 2),
        "full_sync_run_seconds": round(run_seconds, 2),
        "sync_process_peak_rss_mb": peak,
        "users_created": counts.get("user_created"),
    }


def _direct(roster: str, folder: Path, server: Slapd, spec: Spec) -> dict[str, Any]:
    env = _env(folder, "direct")
    org = json.loads(cli(roster, env, ["org", "create", "Bench", "--json"]))["id"]
    args = ["directory", "create", "--org", org, "--type", "ldap", "--name", "direct", "--url", server.url]
    args += ["--bind-dn", server.admin_dn, "--bind-password-file", str(folder / "bind-password")]
    args += ["--search-path", _path(spec), "--json"]
    directory = json.loads(cli(roster, env, args))["id"]
    return _report(roster, env, directory)


def _path(spec: Spec) -> str:
    return ", ".join(part.upper() for part in spec.suffix.split(","))


def _through_agent(roster: str, folder: Path, server: Slapd, spec: Spec) -> dict[str, Any]:
    port = free_port()
    env = _env(folder, "agent", port)
    org = json.loads(cli(roster, env, ["org", "create", "Bench", "--json"]))["id"]
    args = ["directory", "create", "--org", org, "--type", "ldap", "--connection", "agent", "--name", "agent"]
    directory = json.loads(cli(roster, env, [*args, "--search-path", _path(spec), "--json"]))["id"]
    code = json.loads(cli(roster, env, ["agent", "code", directory, "--json"]))["code"]
    serve = subprocess.Popen(
        [roster, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    agent_env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
    agent: subprocess.Popen[bytes] | None = None
    try:
        _wait_http(port, serve)
        enroll = ["agent", "enroll", "--server", f"http://127.0.0.1:{port}", "--code", code]
        enroll += ["--dir", str(folder / "agent"), "--url", server.url, "--bind-dn", server.admin_dn]
        cli(roster, agent_env, [*enroll, "--bind-password-file", str(folder / "bind-password")])
        with open(folder / "agent.log", "wb") as log:
            agent = subprocess.Popen(
                [roster, "agent", "run", "--dir", str(folder / "agent")],
                env=agent_env,
                stdout=log,
                stderr=log,
            )
        _wait_healthy(roster, env, directory)
        result = _report(roster, env, directory)
    finally:
        for proc in (agent, serve):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    return result


def _wait_http(port: int, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("roster serve did not start") from None
            time.sleep(0.1)


def _wait_healthy(roster: str, env: dict[str, str], directory: str) -> None:
    deadline = time.monotonic() + 60
    while not any(
        a["status"] == "healthy" for a in json.loads(cli(roster, env, ["agent", "list", directory, "--json"]))
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the agent did not come up")
        time.sleep(0.5)
