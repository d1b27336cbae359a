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
from cryptography.hazmat.primitives import serialization

from roster.agent import registry
from roster.api.app import create_app
from roster.connectors.base import ConfigError
from roster.demo.slapd import SLAPD, Slapd, SlapdError
from roster.directories import DirectorySpec, create_directory, sync_directory, verify_directory_password
from roster.directories import test_directory as check_connection
from roster.runtime import Runtime
from roster.store.db import utcnow
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
        self.server: Any = None
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

    def restart(self, port: int, done: Any) -> None:
        """Stop the server now; serve again on the same port a moment later (in a thread)."""
        import threading

        self.server.__exit__(None, None, None)

        def again() -> None:
            time.sleep(1.0)
            self.server = serve_app(create_app(self.rt), port)
            self.server.__enter__()
            done.set()

        threading.Thread(target=again, daemon=True).start()

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
    server = serve_app(create_app(sqlite_rt))
    url = server.__enter__()
    s = Site(sqlite_rt, url, socket_slapd, tree, tmp_path)
    s.server = server
    try:
        yield s
    finally:
        s.stop()
        s.server.__exit__(None, None, None)
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
    from roster.accounts.login import login  # the account the sync linked signs in through the agent

    assert login(site.rt, site.org, "ada@example.com", "Correct-Horse-1").reason == "ok"
    assert login(site.rt, site.org, "ada@example.com", "Wrong-Horse-1").reason == "invalid_credentials"


def test_renewal_versions_and_a_silent_agent(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from roster.accounts.service import create_account
    from roster.agent import client
    from roster.agent.state import load
    from roster.settings import Settings
    from roster.store.schema import mail_outbox
    from roster.store.schema_access import agents
    from roster.sync.access_check import check_access

    assert site.enroll("a1").returncode == 0
    agent = client.Agent(load(site.folder / "a1"), Settings())  # type: ignore[call-arg]
    try:
        agent.heartbeat()
        old_key = (site.folder / "a1" / "agent.key").read_bytes()
        assert agent.renew_if_due() is False  # 30 days left
        assert agent.renew_if_due(before=timedelta(days=365)) is True
        assert (site.folder / "a1" / "agent.key").read_bytes() != old_key
        agent.heartbeat()  # the new key is the one the server knows now
        stale = client.Agent(load(site.folder / "a1"), Settings())  # type: ignore[call-arg]
        stale.key = serialization.load_pem_private_key(old_key, password=None)  # type: ignore[assignment]
        with pytest.raises(ConfigError, match="signature"):
            stale.heartbeat()
        stale.close()
        monkeypatch.setattr(client, "__version__", "0.0.9")
        with pytest.raises(ConfigError, match=r"needs roster 0\.1\.0 or newer"):
            agent.heartbeat()
    finally:
        agent.close()

    with site.rt.engine.begin() as conn:
        create_account(conn, site.org, "boss@other.example", role="admin")
    [listed] = site.listing()
    assert listed["status"] == "healthy"
    with site.rt.engine.begin() as conn:  # silent for three minutes
        past = utcnow() - timedelta(minutes=3)
        conn.execute(
            sa.update(agents).where(agents.c.directory_id == site.directory).values(last_seen_at=past)
        )
    [listed] = site.listing()
    assert listed["status"] == "not_responding"
    assert check_access(site.rt, site.directory) is False
    assert check_access(site.rt, site.directory) is False
    with site.rt.engine.connect() as conn:
        subjects = [
            r.subject
            for r in conn.execute(sa.select(mail_outbox).where(mail_outbox.c.organization_id == site.org))
        ]
    assert [s for s in subjects if "cannot be reached" in s] == [
        "Directory Behind the firewall cannot be reached"
    ]


def test_a_sync_whose_agent_dies_is_finished_by_another(socket_slapd: Slapd, tmp_path: Path) -> None:
    import threading

    from tests.conftest import make_runtime

    rt = make_runtime(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, agent_lease_seconds=3)
    tree = Tree(socket_slapd)
    try:
        with serve_app(create_app(rt)) as url:
            site = Site(rt, url, socket_slapd, tree, tmp_path)
            try:
                site.tree.add_user("ada")
                assert site.enroll("a1").returncode == 0 and site.enroll("a2").returncode == 0
                first = site.start("a1")
                first.send_signal(19)  # SIGSTOP: its long poll will take the task, then it dies
                outcome: list[Any] = []
                runner = threading.Thread(
                    target=lambda: outcome.append(sync_directory(rt, site.directory, force=True))
                )
                runner.start()
                deadline = time.monotonic() + 30
                while not _leased_by(rt, _agent_ids(site)[0]):
                    assert time.monotonic() < deadline, "the stopped agent never took the task"
                    time.sleep(0.1)
                first.kill()
                first.wait(10)
                site.start("a2")
                runner.join(60)
                assert outcome and outcome[0].status == "succeeded", outcome and outcome[0].error
                assert {u[0] for u in _users(rt, site.directory).values()} == {"ada@example.com"}
            finally:
                site.stop()
    finally:
        tree.close()
        rt.engine.dispose()


def _agent_ids(site: Site) -> list[str]:
    return [a["id"] for a in sorted(site.listing(), key=lambda a: a["id"])]


def _leased_by(rt: Runtime, agent_id: str) -> bool:
    from roster.store.schema_access import agent_tasks

    with rt.engine.connect() as conn:
        found = conn.execute(
            sa.select(agent_tasks.c.id).where(
                agent_tasks.c.agent_id == agent_id, agent_tasks.c.status == "leased"
            )
        ).first()
    return found is not None


def test_an_upload_resumes_after_the_server_restarts(site: Site, sqlite_rt: Runtime) -> None:
    import gzip
    import threading

    from roster.agent import client, tasks
    from roster.agent.state import load
    from roster.settings import Settings

    assert site.enroll("a1").returncode == 0
    agent = client.Agent(load(site.folder / "a1"), Settings())  # type: ignore[call-arg]
    port = int(site.url.rsplit(":", 1)[1])
    with sqlite_rt.engine.begin() as conn:
        task_id = tasks.enqueue(conn, site.directory, "full", {})
    data = os.urandom(3 * client.CHUNK + 1000)  # incompressible: four chunks
    restarted = threading.Event()
    real = agent.request
    puts = 0

    def request(method: str, path: str, body: bytes = b"", timeout: float = 60) -> Any:
        nonlocal puts
        answer = real(method, path, body, timeout)
        if method == "PUT":
            puts += 1
            if puts == 2:  # the server goes away mid-upload, and comes back on the same port
                site.restart(port, restarted)
        return answer

    try:
        agent.heartbeat()
        task = agent.next_task(wait=1)
        assert task is not None and task["id"] == task_id
        agent.request = request  # type: ignore[method-assign]
        agent.upload(task_id, data)
        assert restarted.is_set()
        with sqlite_rt.engine.begin() as conn:
            assert gzip.decompress(tasks.take_upload(conn, task_id)) == data
    finally:
        agent.close()


def test_active_directory_logins_through_the_agent_keep_their_reasons(
    sqlite_rt: Runtime, samba_dc: Any, ad_tree: Any, tmp_path: Path
) -> None:
    from roster.connectors.ldap.bind import BindReason
    from tests.support.ad_tree import PASSWORD

    ad_tree.add_user("ok")
    ad_tree.add_user("lock")
    ad_tree.add_user("off", disabled=True)
    change = ad_tree.add_user("change")
    ad_tree.replace(change, "pwdLastSet", [b"0"])
    ad_tree.add_user("old", accountExpires=b"1")
    org = new_org(sqlite_rt)
    settings = {
        "connection": "agent",
        "search_paths": [ad_tree.search_path],
        "user_bind_template": f"{{login}}.{ad_tree.name}@example.local",
    }
    directory = create_directory(sqlite_rt, DirectorySpec(org, "Corp AD", "active_directory", settings))["id"]
    (tmp_path / "pw").write_text(samba_dc.admin_password)
    with serve_app(create_app(sqlite_rt)) as url:
        with sqlite_rt.engine.begin() as conn:
            code = registry.issue_code(conn, directory, timedelta(minutes=5))[0]
        enroll = [ROSTER, "agent", "enroll", "--server", url, "--code", code, "--dir", str(tmp_path / "a")]
        enroll += [
            "--url",
            samba_dc.ldaps_url,
            "--bind-dn",
            samba_dc.admin_dn,
            "--bind-password-file",
            str(tmp_path / "pw"),
        ]
        enroll += ["--ca-file", str(samba_dc.ca_file)]
        done = subprocess.run(enroll, capture_output=True, text=True, timeout=60, check=False, env=_env())
        assert done.returncode == 0, done.stderr
        with open(tmp_path / "agent.log", "wb") as log:
            proc = subprocess.Popen(
                [ROSTER, "agent", "run", "--dir", str(tmp_path / "a")], stdout=log, stderr=log, env=_env()
            )
            try:
                deadline = time.monotonic() + 30
                while not any(a["status"] == "healthy" for a in _listing(sqlite_rt, directory)):
                    assert time.monotonic() < deadline and proc.poll() is None
                    time.sleep(0.2)

                def check(login: str, password: str) -> str:
                    return verify_directory_password(sqlite_rt, directory, login, password).reason

                assert check("ok", PASSWORD) == BindReason.OK
                assert check("ok", "wrong") == BindReason.INVALID_CREDENTIALS
                assert check("off", PASSWORD) == BindReason.DISABLED
                assert check("change", PASSWORD) == BindReason.MUST_CHANGE_PASSWORD
                assert check("old", PASSWORD) == BindReason.ACCOUNT_EXPIRED
                for _ in range(3):
                    assert check("lock", "wrong") == BindReason.INVALID_CREDENTIALS
                assert check("lock", PASSWORD) == BindReason.LOCKED
                assert sync_directory(sqlite_rt, directory, force=True).ok
            finally:
                proc.terminate()
                proc.wait(15)


def _listing(rt: Runtime, directory_id: str) -> list[dict[str, Any]]:
    with rt.engine.connect() as conn:
        return registry.listing(conn, directory_id)
