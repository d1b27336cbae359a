"""Enabling, losing and disabling a directory: e-mails through a real SMTP server, links that work once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from roster.api.app import create_app
from roster.demo.slapd import Slapd, free_port
from roster.directories import sync_directory
from roster.notify.mail import deliver
from roster.runtime import Runtime
from roster.store import repo
from roster.store.db import utcnow
from roster.store.schema import action_tokens, directories, mail_outbox
from roster.sync.access_check import check_access
from tests.conftest import make_runtime
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app
from tests.support.smtp import Inbox, smtp_server

LINK = re.compile(r"http://127\.0\.0\.1:\d+/actions/(\S+)")  # a page; /api/v1/actions/ is its API


@pytest.fixture
def mail_rt(database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, Inbox]]:
    with smtp_server() as (inbox, port):
        rt = make_runtime(database_url, tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        yield rt, inbox
        rt.engine.dispose()


def link_in(inbox: Inbox, address: str, subject_part: str) -> str:
    messages = [m for m in inbox.to(address) if subject_part in m["Subject"]]
    assert messages, f"no mail to {address} about {subject_part!r}: {[m['Subject'] for m in inbox.messages]}"
    match = LINK.search(Inbox.body(messages[-1]))
    assert match, Inbox.body(messages[-1])
    return match.group(1)


def test_directory_lifecycle_by_mail(mail_rt: tuple[Runtime, Inbox], slapd: Slapd, tree: Tree) -> None:
    rt, inbox = mail_rt
    org = new_org(rt)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org, "app")
    tree.add_user("ada")
    tree.add_user("bob")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
    ):
        boss = http.post(
            f"/api/v1/organizations/{org}/accounts",
            json={"email": "boss@example.com", "role": "admin", "password": "boss-password"},
        ).json()
        nobody = http.put(f"/api/v1/organizations/{org}/alerts", json={"notify_only_selected": True})
        assert "no one will receive" in nobody.json()["warnings"][0]
        chosen = http.put(
            f"/api/v1/organizations/{org}/alerts",
            json={"notify_only_selected": True, "recipients": [boss["id"]]},
        ).json()
        assert chosen == {"notify_only_selected": True, "recipients": [boss["id"]], "warnings": []}

        # Enabling: the recipients are told
        d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
        assert sync_directory(rt, d).ok
        assert deliver(rt.engine, rt.settings) == 1
        assert [m["Subject"] for m in inbox.to("boss@example.com")] == ["Directory Test LDAP is enabled"]

        # Losing the connection: one alert per outage, with a recovery link
        good_url = f"{slapd.url}"
        dead = {**_config(rt, d), "url": f"ldap://127.0.0.1:{free_port()}"}
        _set_config(rt, d, dead)
        assert check_access(rt, d) is False and check_access(rt, d) is False
        deliver(rt.engine, rt.settings)
        lost = [m for m in inbox.to("boss@example.com") if "cannot be reached" in m["Subject"]]
        assert len(lost) == 1
        status = http.post(f"/api/v1/directories/{d}/check").json()
        assert status["ok"] is False and "unreachable" in status["error"]
        token = link_in(inbox, "boss@example.com", "cannot be reached")
        with rt.engine.connect() as conn:  # once sent, the outbox keeps the text without the link
            kept = conn.execute(
                sa.select(mail_outbox.c.body).where(mail_outbox.c.kind == "access_lost")
            ).all()
        assert [token in b for (b,) in kept] == [False] and "/actions/[sent by e-mail]" in kept[0][0]
        assert http.get(f"/api/v1/actions/{token}").json()["kind"] == "recover_access"
        done = httpx.post(f"{url}/api/v1/actions/{token}", json={"password": "boss-new-password"})
        assert done.status_code == 200 and done.json()["account_id"] == boss["id"]
        again = httpx.post(f"{url}/api/v1/actions/{token}", json={"password": "boss-new-password"})
        assert again.status_code == 410 and again.json()["code"] == "link_used"
        login = http.post(
            "/api/v1/auth/login",
            json={"organization_id": org, "email": "boss@example.com", "password": "boss-new-password"},
        )
        assert login.status_code == 200
        _set_config(rt, d, {**dead, "url": good_url})
        assert check_access(rt, d) is True
        with rt.engine.connect() as conn:
            assert repo.get_directory(conn, d)["lost_alerted_at"] is None  # the next outage alerts again

        # Disabling: nothing changes until an admin confirms
        assert sync_directory(rt, d).ok
        assert http.post(f"/api/v1/directories/{d}/disable").json()["admins"] == 1
        deliver(rt.engine, rt.settings)
        accounts = {a["email"]: a for a in http.get(f"/api/v1/organizations/{org}/accounts").json()["data"]}
        assert accounts["ada@example.com"]["directory_managed"]
        confirm = link_in(inbox, "boss@example.com", "Confirm: disable")
        assert httpx.post(f"{url}/api/v1/actions/{confirm}").json()["unlinked"] == 2
        deliver(rt.engine, rt.settings)
        accounts = {a["email"]: a for a in http.get(f"/api/v1/organizations/{org}/accounts").json()["data"]}
        assert not accounts["ada@example.com"]["directory_managed"]
        assert http.post(f"/directories/{d}/sync").status_code == 409  # disabled: no syncs
        reset = link_in(inbox, "ada@example.com", "Set a password")
        assert (
            httpx.post(f"{url}/api/v1/actions/{reset}", json={"password": "ada-local-pass"}).status_code
            == 200
        )
        assert (
            http.post(
                "/api/v1/auth/login",
                json={"organization_id": org, "email": "ada@example.com", "password": "ada-local-pass"},
            ).status_code
            == 200
        )

        # Re-enabling: the accounts linked again are told
        assert http.post(f"/api/v1/directories/{d}/enable").json()["state"] == "linking"
        assert sync_directory(rt, d).ok
        deliver(rt.engine, rt.settings)
        assert [m["Subject"] for m in inbox.to("bob@example.com")][
            -1
        ] == "Your account is managed by the directory again"
        accounts = {a["email"]: a for a in http.get(f"/api/v1/organizations/{org}/accounts").json()["data"]}
        assert (
            accounts["ada@example.com"]["directory_managed"]
            and not accounts["ada@example.com"]["has_local_password"]
        )


def test_expired_and_forged_links_are_refused(
    mail_rt: tuple[Runtime, Inbox], slapd: Slapd, tree: Tree
) -> None:
    rt, inbox = mail_rt
    org = new_org(rt)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org, "app")
    tree.add_user("ada")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        http.post(
            f"/api/v1/organizations/{org}/accounts", json={"email": "boss@example.com", "role": "admin"}
        )
        d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
        assert sync_directory(rt, d).ok
        http.post(f"/api/v1/directories/{d}/disable")
        deliver(rt.engine, rt.settings)
        token = link_in(inbox, "boss@example.com", "Confirm: disable")
        forged = token.split(".")[0] + ".not-the-secret"
        assert httpx.post(f"{url}/api/v1/actions/{forged}").status_code == 404
        with rt.engine.begin() as conn:
            conn.execute(sa.update(action_tokens).values(expires_at=utcnow() - timedelta(seconds=1)))
        expired = httpx.post(f"{url}/api/v1/actions/{token}")
        assert expired.status_code == 410 and expired.json()["code"] == "link_expired"
        with rt.engine.connect() as conn:
            assert repo.get_directory(conn, d)["state"] == "linked"  # nothing changed


def test_without_smtp_mail_waits_in_the_outbox(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    org = new_org(rt)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org, "app")
    tree.add_user("ada")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        http.post(
            f"/api/v1/organizations/{org}/accounts", json={"email": "boss@example.com", "role": "admin"}
        )
        d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
        assert sync_directory(rt, d).ok
        assert deliver(rt.engine, rt.settings) == 0
        outbox = http.get(f"/api/v1/organizations/{org}/mail").json()["data"]
        assert [(m["to"], m["kind"], m["sent_at"]) for m in outbox] == [
            ("boss@example.com", "directory_enabled", None)
        ]


def _config(rt: Runtime, d: str) -> dict[str, object]:
    with rt.engine.connect() as conn:
        return dict(repo.get_directory(conn, d)["config"])


def _set_config(rt: Runtime, d: str, config: dict[str, object]) -> None:
    with rt.engine.begin() as conn:
        conn.execute(sa.update(directories).where(directories.c.id == d).values(config=config))
