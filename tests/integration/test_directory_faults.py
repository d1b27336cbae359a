"""A directory that fails while Roster reads it: a connection reset mid-page, a server slower
than the timeouts, slapd stopped in the middle of a search, a certificate from another CA or
one that has expired. Each run fails with its own precise reason, applies nothing, and the
organization's admins get one alert for the outage; the next good run converges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from roster.accounts.service import create_account
from roster.demo.pki import make_pki
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import directories, mail_outbox
from roster.sync.pipeline import Phase
from tests.conftest import BASE_LDIF, make_runtime
from tests.support.faulty_proxy import Fault, faulty_proxy
from tests.support.helpers import dump, ldap_directory, new_org
from tests.support.ldap_tree import Tree

PEOPLE = 400


@pytest.fixture
def short_rt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(
        database_url, tmp_path, ldap_connect_timeout=2.0, ldap_operation_timeout=2.0, ldap_page_size=50
    )
    yield rt
    rt.engine.dispose()


def alerts(rt: Runtime, org: str) -> int:
    with rt.engine.connect() as conn:
        where = (mail_outbox.c.organization_id == org, mail_outbox.c.kind == "access_lost")
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(mail_outbox).where(*where)).scalar() or 0
        )


def point_at(rt: Runtime, directory_id: str, url: str, **config: object) -> None:
    with rt.engine.begin() as conn:
        row = repo.get_directory(conn, directory_id)
        changed = {**row["config"], "url": url, **config}
        conn.execute(sa.update(directories).where(directories.c.id == directory_id).values(config=changed))


def failed_and_nothing_applied(rt: Runtime, directory_id: str, reason: str, words: str, **kw: object) -> str:
    before = dump(rt)
    result = sync_directory(rt, directory_id, **kw)  # type: ignore[arg-type]
    assert (result.status, result.error_reason) == ("failed", reason), result
    assert words in (result.error or ""), result.error
    assert dump(rt) == before
    return result.error or ""


def test_faults_mid_read_fail_precisely_apply_nothing_and_alert_once(
    short_rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    rt = short_rt
    for i in range(PEOPLE):
        tree.add_user(f"f{i}")
    org = new_org(rt)
    with rt.engine.begin() as conn:
        create_account(conn, org, "admin@example.com", role="admin", password="a long admin password")
    port = slapd.url.rsplit(":", 1)[1]
    with faulty_proxy(int(port), Fault()) as healthy:
        d = ldap_directory(
            rt, org, f"ldap://127.0.0.1:{healthy}", slapd.admin_dn, slapd.admin_password, [tree.search_path]
        )
        assert sync_directory(rt, d).ok
    for i in range(PEOPLE, PEOPLE + 20):
        tree.add_user(f"f{i}")  # what the failing runs would have added
    with faulty_proxy(int(port), Fault(reset_after=20_000)) as resetting:
        point_at(rt, d, f"ldap://127.0.0.1:{resetting}")
        failed_and_nothing_applied(rt, d, "unreachable", "unreachable", full=True)
    with faulty_proxy(int(port), Fault(stall=True)) as stalling:
        point_at(rt, d, f"ldap://127.0.0.1:{stalling}")
        failed_and_nothing_applied(rt, d, "timeout", "timed out", full=True)
    assert alerts(rt, org) == 1  # one outage, one alert
    point_at(rt, d, slapd.url)
    assert sync_directory(rt, d, full=True).ok  # converges: the 20 new people arrive
    with rt.engine.connect() as conn:
        assert repo.get_directory(conn, d)["lost_alerted_at"] is None  # recovered: the next outage alerts
    assert len(dump(rt)["directory_users"]) == PEOPLE + 20


def test_slapd_stopped_in_the_middle_of_a_search(short_rt: Runtime, tmp_path: Path) -> None:
    rt = short_rt
    server = Slapd(tmp_path / "slapd")
    server.configure()
    (tmp_path / "base.ldif").write_text(BASE_LDIF)
    server.load(tmp_path / "base.ldif")
    server.start()
    try:
        tree = Tree(server)
        for i in range(1200):  # progress is told every 500 entries; pages are 50
            tree.add_user(f"s{i}")
        tree.close()
        org = new_org(rt)
        d = ldap_directory(rt, org, server.url, server.admin_dn, server.admin_password, [tree.search_path])

        def stop_at(n: int) -> None:
            if n >= 500 and server.running:
                server.stop()  # slapd goes away while the search is under way

        failed_and_nothing_applied(rt, d, "unreachable", "unreachable", progress=Phase(read=stop_at))
        assert not server.running and dump(rt)["directory_users"] == []
    finally:
        server.stop()


@pytest.mark.parametrize("case", ["other CA", "expired"])
def test_a_certificate_that_is_not_trusted_names_tls(short_rt: Runtime, tmp_path: Path, case: str) -> None:
    rt = short_rt
    pki = make_pki(tmp_path / "pki", server_days=-1 if case == "expired" else 30)
    server = Slapd(tmp_path / "slapd", tls=pki)
    server.configure()
    (tmp_path / "base.ldif").write_text(BASE_LDIF)
    server.load(tmp_path / "base.ldif")
    server.start()
    try:
        trusted = pki.ca_file if case == "expired" else make_pki(tmp_path / "other").ca_file
        org = new_org(rt)
        d = ldap_directory(
            rt, org, server.ldaps_url, server.admin_dn, server.admin_password, ["dc=example,dc=com"],
            ca_file=str(trusted),
        )  # fmt: skip
        words = failed_and_nothing_applied(rt, d, "tls", "TLS")
        assert ("expired" in words) == (case == "expired"), words
        assert alerts(rt, org) == 0  # no admin account: nobody to alert, and nothing fails for it
    finally:
        server.stop()
