"""The on-prem agent end to end: a real `roster agent` process next to a slapd that listens only on a
local socket in a private folder, and Roster's server on loopback, which is never told where the
directory is nor its bind password. Syncs through the agent must equal a direct read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from roster.agent import registry
from roster.api.app import create_app
from roster.demo.slapd import SLAPD, Slapd, SlapdError
from roster.directories import DirectorySpec, create_directory, sync_directory, verify_directory_password
from roster.directories import test_directory as check_connection
from roster.runtime import Runtime
from roster.store.schema import directory_users
from tests.conftest import BASE_LDIF
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app, unavailable

ROSTER = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"


@pytest.fixture
def socket_slapd() -> Iterator[Slapd]:
    """slapd on ``ldapi://`` only: no TCP port, nothing the server could be pointed at."""
    if not Path(SLAPD).exists():
        unavailable("OpenLDAP slapd", f"{SLAPD} is not installed")
    folder = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))  # a unix socket path is short
    server = Slapd(folder, socket=folder / "ldapi")
    try:
        server.configure()
        (folder / "base.ldif").write_text(BASE_LDIF)
        server.load(folder / "base.ldif")
        server.start()
    except SlapdError as exc:
        unavailable("OpenLDAP slapd on a socket", str(exc))
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


class Site:
    def __init__(self, rt: Runtime, url: str, slapd: Slapd, tree: Tree, folder: Path) -> None:
        self.rt, self.url, self.slapd, self.tree, self.folder = rt, url, slapd, tree, folder
        self.org = new_org(rt)
        spec = DirectorySpec(
            self.org,
            "Behind the firewall",
            "ldap",
            {"connection": "agent", "search_paths": [tree.search_path]},
        )
        self.directory = create_directory(rt, spec)["id"]
        (folder / "bind-password").write_text(slapd.admin_password + "\n")
        self.agents: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def code(self) -> str:
        with self.rt.engine.begin() as conn:
            return registry.issue_code(conn, self.directory, timedelta(minutes=5))[0]

    def enroll(self, name: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
        args = [
            ROSTER,
            "agent",
            "enroll",
            "--server",
            self.url,
            "--code",
            code or self.code(),
            "--dir",
            str(self.folder / name),
        ]
        args += [
            "--url",
            self.slapd.url,
            "--bind-dn",
            self.slapd.admin_dn,
            "--bind-password-file",
            str(self.folder / "bind-password"),
        ]
        return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=_env())

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.logs.append(log)
        proc = subprocess.Popen(
            [ROSTER, "agent", "run", "--dir", str(self.folder / name)], stdout=log, stderr=log, env=_env()
        )
        self.agents.append(proc)
        deadline = time.monotonic() + 30
        while not any(a["status"] == "healthy" for a in self.listing()):
            assert time.monotonic() < deadline and proc.poll() is None, (
                self.folder / f"{name}.log"
            ).read_text()
            time.sleep(0.2)
        return proc

    def listing(self) -> list[dict[str, Any]]:
        with self.rt.engine.connect() as conn:
            return registry.listing(conn, self.directory)

    def stop(self) -> None:
        for proc in self.agents:
            proc.terminate()
            proc.wait(15)
        for log in self.logs:
            log.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("ROSTER_")]:
        env.pop(key)  # the agent has no store of its own
    return env


@pytest.fixture
def site(sqlite_rt: Runtime, socket_slapd: Slapd, tmp_path: Path) -> Iterator[Site]:
    tree = Tree(socket_slapd)
    with serve_app(create_app(sqlite_rt)) as url:
        s = Site(sqlite_rt, url, socket_slapd, tree, tmp_path)
        try:
            yield s
        finally:
            s.stop()
            tree.close()


def _users(rt: Runtime, directory_id: str) -> dict[str, tuple[Any, ...]]:
    u = directory_users
    with rt.engine.connect() as conn:
        rows = conn.execute(
            sa.select(u.c.idp_id, u.c.email, u.c.name, u.c.username, u.c.state, u.c.raw_attributes).where(
                u.c.directory_id == directory_id
            )
        ).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_enrolment_sync_and_revocation_through_the_agent(site: Site) -> None:
    dns = [site.tree.add_user(f"user{i}") for i in range(5)]
    site.tree.add_group("staff", dns[:3])
    with site.rt.engine.connect() as conn:
        config = conn.execute(
            sa.text("select config from directories where id = :d"), {"d": site.directory}
        ).scalar()
    assert "ldapi" not in str(config) and site.slapd.admin_password not in str(config)

    used = site.code()
    enrolled = site.enroll("a1", used)
    assert enrolled.returncode == 0, enrolled.stderr
    again = site.enroll("a2", used)
    assert again.returncode != 0 and "unknown, used or expired" in again.stderr
    assert site.slapd.admin_password not in (site.folder / "a1" / "bind-password.sealed").read_text(
        errors="ignore"
    )
    assert oct((site.folder / "a1" / "agent.key").stat().st_mode)[-3:] == "600"
    site.start("a1")

    report = check_connection(site.rt, site.directory)
    assert report.ok, report.detail
    first = sync_directory(site.rt, site.directory, force=True)
    assert first.status == "succeeded", first.error

    direct = ldap_directory(
        site.rt,
        site.org,
        site.slapd.url,
        site.slapd.admin_dn,
        site.slapd.admin_password,
        [site.tree.search_path],
    )
    assert sync_directory(site.rt, direct, force=True).ok
    assert _users(site.rt, site.directory) == _users(site.rt, direct)
    assert len(_users(site.rt, site.directory)) == 5

    site.tree.add_user("late")
    second = sync_directory(site.rt, site.directory)
    assert second.status == "succeeded" and second.kind == "incremental", second.error
    assert sync_directory(site.rt, direct).ok
    assert _users(site.rt, site.directory) == _users(site.rt, direct)

    [agent] = site.listing()
    assert agent["status"] == "healthy" and agent["version"] and agent["hostname"]
    with site.rt.engine.begin() as conn:
        registry.revoke(conn, agent["id"])
    refused = sync_directory(site.rt, site.directory)
    assert refused.status == "failed" and "no agent" in (refused.error or "")


def test_a_login_through_the_agent_and_a_second_agent_taking_over(site: Site, tmp_path: Path) -> None:
    ada = site.tree.add_user("ada", userPassword="Correct-Horse-1")
    for name in ("a1", "a2"):
        assert site.enroll(name).returncode == 0
    first = site.start("a1")
    ok = verify_directory_password(site.rt, site.directory, ada, "Correct-Horse-1")
    wrong = verify_directory_password(site.rt, site.directory, ada, "Wrong-Horse-1")
    assert (ok.ok, ok.reason) == (True, "ok")
    assert (wrong.ok, wrong.reason) == (False, "invalid_credentials")
    with site.rt.engine.connect() as conn:
        stored = [
            str(tuple(r))
            for t in ("agent_tasks", "scim_requests", "sync_log")
            for r in conn.execute(sa.text(f"select * from {t}"))
        ]
    assert not [s for s in stored if "Horse" in s]  # sealed while waiting, dropped once answered

    first.terminate()  # one agent stops; the other serves the directory
    first.wait(15)
    site.start("a2")
    outcome = sync_directory(site.rt, site.directory, force=True)
    assert outcome.status == "succeeded", outcome.error
    assert "ada@example.com" in {u[0] for u in _users(site.rt, site.directory).values()}
