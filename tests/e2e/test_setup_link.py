"""A self-serve setup link, made by the host application through the official WorkOS SDK, opened by
the customer's IT admin in a fresh browser (no account, no cookie) and completed against a real
slapd: a typo caught, the connection tested, the first sync run, the host told by dsync.activated."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import expect
from workos import WorkOSClient

from roster.demo.slapd import Slapd, free_port
from roster.runtime import open_runtime
from roster.settings import Settings
from roster.store import repo
from tests.support.console import chromium, roster_serve, serious_violations
from tests.support.ldap_tree import Tree

pytestmark = pytest.mark.slapd


def _store(tmp_path: Path) -> tuple[dict[str, str], str, str]:
    """(server env, organization id, API key)."""
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'roster.db'}"
    rt = open_runtime(Settings(database_url=url, secret_key=key, key_file=tmp_path / "k"))  # type: ignore[call-arg]
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme", "example.com")["id"]
        _, secret = repo.create_api_key(conn, org, "host app")
    rt.engine.dispose()
    env = {
        "ROSTER_DATABASE_URL": url,
        "ROSTER_SECRET_KEY": key,
        "ROSTER_ACCESS_CHECK_DELAY_SECONDS": "3600",
        # the test's directory is on loopback, which a customer's URL may not reach by default
        "ROSTER_DIRECTORY_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    return env, org, secret


def _two_links(host: WorkOSClient, org: str) -> tuple[str, str]:
    """Two links in a row, as the host application makes them with the official SDK."""
    first = host.admin_portal.generate_link(organization=org, intent="dsync").link
    second = host.admin_portal.generate_link(
        organization=org,
        intent="dsync",
        success_url="https://app.example/done",
        return_url="https://app.example",
    ).link
    return first, second


def test_an_it_admin_connects_the_directory_through_a_setup_link(
    tmp_path: Path, slapd: Slapd, tree: Tree
) -> None:
    for uid in ("alice", "bob", "carol"):
        tree.add_user(uid)
    env, org, key = _store(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ["ROSTER_SCREENSHOTS"]) if os.environ.get("ROSTER_SCREENSHOTS") else None
    with roster_serve({**env, "ROSTER_PUBLIC_URL": base}, port), chromium() as browser:
        with WorkOSClient(api_key=key, client_id="client_test", base_url=base) as host:
            first, link = _two_links(host, org)
        assert link.startswith(f"{base}/setup/") and first != link
        assert httpx.get(first).status_code == 404  # the newer link replaced it
        page = browser.new_context().new_page()  # the IT admin: no session, no cookie
        page.goto(link)
        assert page.get_by_role("heading", name="Connect Acme's directory").is_visible()
        assert serious_violations(page) == []
        if shots:
            page.screenshot(path=str(shots / "setup-link.png"), full_page=True)
        page.get_by_label("Directory", exact=True).first.select_option("ldap")
        page.get_by_label("Server URL").fill(slapd.url)
        page.get_by_label("Bind account (its DN)").fill(slapd.admin_dn)
        page.get_by_label("Bind password").fill(slapd.admin_password)
        paths = page.locator("#ldap-paths")
        paths.fill(tree.search_path.replace(", DC=", " DC=", 1))
        page.get_by_role("button", name="Connect and test").first.click()
        assert "comma missing" in page.get_by_role("alert").inner_text()  # nothing created
        page.get_by_label("Bind password").fill(slapd.admin_password)
        page.locator("#ldap-paths").fill(tree.search_path)
        page.get_by_role("button", name="Connect and test").first.click()
        assert "succeeded" in page.locator("#test-title").inner_text()
        assert serious_violations(page) == []
        page.get_by_role("button", name="Start the first sync").click()
        assert "succeeded" in page.get_by_role("heading", name="First sync").locator("xpath=..").inner_text()
        assert "3 active users" in page.locator("#arrived").inner_text()
        assert page.get_by_role("link", name="Done: return to the application").get_attribute("href") == (
            "https://app.example/done"
        )
        if shots:
            page.screenshot(path=str(shots / "setup-done.png"), full_page=True)
        events = httpx.get(
            f"{base}/events", params={"events": "dsync.activated"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert [e["event"] for e in events.json()["data"]] == ["dsync.activated"]
        page.goto(link)  # opened again: it continues with the directory it set up
        assert "Directory sync is active" in page.get_by_role("status").inner_text()


def test_setup_links_refuse_bad_requests_and_other_organizations(tmp_path: Path) -> None:
    env, org, key = _store(tmp_path)
    logs: list[str] = []
    links: list[str] = []
    with roster_serve(env, logs=logs) as base:
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=auth) as api:
            assert (
                api.post("/portal/generate_link", json={"organization": org, "intent": "sso"}).status_code
                == 422
            )
            bad_url = api.post(
                "/portal/generate_link", json={"organization": org, "success_url": "javascript:x"}
            )
            assert bad_url.status_code == 422 and "success_url" in bad_url.json()["message"]
            other = api.post("/portal/generate_link", json={"organization": "org_01NOSUCHORGANIZATION000000"})
            assert other.status_code == 404
            made = api.post("/portal/generate_link", json={"organization": org, "external_user_id": "u1"})
            assert made.status_code == 201
            assert httpx.get(made.json()["link"].replace("http://127.0.0.1:8000", base)).status_code == 200
            links.append(made.json()["link"].rsplit("/", 1)[1])
            assert (
                api.post(
                    "/portal/revoke_link", json={"organization": org, "external_user_id": "u1"}
                ).status_code
                == 204
            )
            assert httpx.get(made.json()["link"].replace("http://127.0.0.1:8000", base)).status_code == 404
        assert httpx.get(f"{base}/setup/not-a-token").status_code == 404
    assert links and "/setup/[redacted]" in logs[0]
    assert not any(token in logs[0] for token in links)  # a log reader cannot use a link


def test_a_setup_link_for_scim_waits_for_the_providers_first_request(tmp_path: Path) -> None:
    env, org, key = _store(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with roster_serve({**env, "ROSTER_PUBLIC_URL": base}, port), chromium() as browser:
        with WorkOSClient(api_key=key, client_id="client_test", base_url=base) as host:
            link = host.admin_portal.generate_link(organization=org, intent="dsync").link
        page = browser.new_context().new_page()
        page.goto(link)
        page.get_by_label("Identity provider", exact=True).select_option("okta")
        page.get_by_role("button", name="Get the endpoint and token").click()
        endpoint = page.locator("dd code").first.inner_text()
        token = page.locator("#scim-token").inner_text()
        assert endpoint.startswith(
            f"{base}/scim/v2/directory_"
        ) and "SCIM connector base URL" in page.inner_text("main")
        assert "Waiting for the first request" in page.locator("#waiting").inner_text()
        assert serious_violations(page) == []
        user = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@example.com", "primary": True}],
            "active": True,
        }
        made = httpx.post(f"{endpoint}/Users", json=user, headers={"Authorization": f"Bearer {token}"})
        assert made.status_code == 201
        waiting = expect(page.locator("#waiting"))  # the page asks again every few seconds, no reload
        waiting.to_contain_text("1 active user", timeout=15000)
        page.reload()
        assert page.locator("#scim-token").count() == 0  # the token was shown once
        assert "Directory sync is active" in page.get_by_role("status").inner_text()
