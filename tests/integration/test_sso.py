"""Single sign-on for Entra-linked accounts, end to end: the official WorkOS SDK as the host
application, Roster's API on loopback, the Graph and login emulator as Entra, httpx as the browser."""

from __future__ import annotations

import html
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from workos import WorkOSClient

from roster.api.app import create_app
from roster.demo.graph import GraphEmulator
from roster.demo.graph_tenant import Tenant
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store.schema import accounts, directory_users, organizations
from roster.store.schema_access import sso_codes, sso_logins
from tests.integration.test_api import org_key
from tests.support.graph import azure_directory, company, register_app
from tests.support.helpers import new_org
from tests.support.servers import serve_app

HOST = "https://app.example/callback"


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path, Tenant()).running() as emulator:
        yield emulator


def _form(page: str) -> tuple[str, dict[str, str]]:
    """What a browser posts when it runs a form_post page: the form's action and hidden fields."""
    action = html.unescape(re.search(r'action="([^"]*)"', page).group(1))  # type: ignore[union-attr]
    fields = {
        html.unescape(k): html.unescape(v) for k, v in re.findall(r'name="([^"]*)" value="([^"]*)"', page)
    }
    return action, fields


class Setup:
    def __init__(self, rt: Runtime, graph: GraphEmulator, url: str) -> None:
        self.rt, self.graph, self.url = rt, graph, url
        self.ids = company(graph.tenant)
        self.org = new_org(rt)
        with rt.engine.begin() as conn:
            conn.execute(
                sa.update(organizations)
                .where(organizations.c.id == self.org)
                .values(sso_redirect_uris=[HOST])
            )
        self.directory = azure_directory(rt, self.org, graph, register_app(graph))
        assert sync_directory(rt, self.directory, force=True).status == "succeeded"
        self.sdk = WorkOSClient(api_key=org_key(rt, self.org), client_id="client_host", base_url=url)
        context = ssl.create_default_context(cafile=str(graph.ca_file))
        self.browser = httpx.Client(verify=context, follow_redirects=False, timeout=30)

    def sign_in(self, who: str, state: str = "host-state-1") -> dict[str, list[str]]:
        """The browser's trip: host -> Roster -> Entra -> Roster -> host; the host's query."""
        self.graph.sign_in.signed_in = self.ids[who]
        url = self.sdk.sso.get_authorization_url(organization=self.org, redirect_uri=HOST, state=state)
        response = self.browser.get(url)  # the host's link: Roster sends the browser to Entra
        assert response.status_code == 302, response.text
        response = self.browser.get(response.headers["location"])  # Entra: a page that posts back
        assert response.status_code == 200, response.text
        action, fields = _form(response.text)
        response = self.browser.post(action, data=fields)  # Roster: on to the host
        assert response.status_code == 303, response.text
        url = response.headers["location"]
        assert url.startswith(HOST + "?")
        return parse_qs(urlsplit(url).query)

    def close(self) -> None:
        self.browser.close()
        self.sdk.close()


@pytest.fixture
def setup(sqlite_rt: Runtime, graph: GraphEmulator) -> Iterator[Setup]:
    with serve_app(create_app(sqlite_rt)) as url:
        s = Setup(sqlite_rt, graph, url)
        yield s
        s.close()


def test_a_linked_account_signs_in_with_the_workos_sdk(setup: Setup) -> None:
    back = setup.sign_in("Ada Lovelace")
    assert back["state"] == ["host-state-1"]
    result = setup.sdk.sso.get_profile_and_token(code=back["code"][0])
    profile = result.profile
    assert (profile.email, profile.first_name, profile.last_name) == ("ada@example.com", "Ada", "Lovelace")
    assert profile.idp_id == setup.ids["Ada Lovelace"]
    assert profile.organization_id == setup.org and profile.connection_id == setup.directory
    assert profile.connection_type.value == "EntraIdOIDC"
    with setup.rt.engine.connect() as conn:
        account = conn.execute(
            sa.select(accounts.c.id).where(accounts.c.email_lower == "ada@example.com")
        ).scalar()
        assert profile.id == account
        # nothing readable is stored: the state and the code are kept as hashes
        assert back["code"][0] not in str(conn.execute(sa.select(sso_codes)).all())
        assert conn.execute(sa.select(sa.func.count()).select_from(sso_logins)).scalar() == 0
    with pytest.raises(Exception, match="already used"):
        setup.sdk.sso.get_profile_and_token(code=back["code"][0])


def test_a_disabled_user_is_refused_at_once_by_entra_and_by_roster(setup: Setup) -> None:
    setup.graph.tenant.put_user({"accountEnabled": False}, setup.ids["Grace Hopper"])
    back = setup.sign_in("Grace Hopper")  # Entra refuses it (AADSTS50057), before any sync
    assert back["error"] == ["access_denied"] and "AADSTS50057" in back["error_description"][0]
    assert "code" not in back
    # a user Roster holds as inactive is refused even if the provider lets it through
    with setup.rt.engine.begin() as conn:
        conn.execute(
            sa.update(directory_users)
            .where(directory_users.c.idp_id == setup.ids["Alan Turing"])
            .values(state="inactive")
        )
    back = setup.sign_in("Alan Turing")
    assert back["error"] == ["access_denied"] and "not an active user" in back["error_description"][0]
    assert sync_directory(setup.rt, setup.directory, force=True).status == "succeeded"
    with setup.rt.engine.connect() as conn:
        grace = conn.execute(sa.select(accounts).where(accounts.c.email_lower == "grace@example.com")).one()
    assert grace.disabled  # the account follows at the next sync


def test_unregistered_redirects_and_replayed_states_are_refused(setup: Setup) -> None:
    url = setup.sdk.sso.get_authorization_url(organization=setup.org, redirect_uri="https://evil.example/cb")
    response = setup.browser.get(url)
    assert response.status_code == 422 and "location" not in response.headers
    assert "redirect_uri: 'https://evil.example/cb' is not registered" in response.json()["message"]
    other = new_org(setup.rt, "Other", domain=None)
    url = setup.sdk.sso.get_authorization_url(organization=other, redirect_uri=HOST)
    assert setup.browser.get(url).status_code == 422  # not registered there either
    replay = setup.browser.post(f"{setup.url}/sso/callback", data={"state": "forged", "code": "x"})
    assert replay.status_code == 400 and replay.json()["message"].startswith("state:")


def test_a_code_from_another_organization_key_is_refused(setup: Setup) -> None:
    back = setup.sign_in("Ada Lovelace")
    other = new_org(setup.rt, "Other", domain=None)
    with (
        WorkOSClient(
            api_key=org_key(setup.rt, other), client_id="c", base_url=setup.url, max_retries=0
        ) as sdk,
        pytest.raises(Exception, match="another organization"),
    ):
        sdk.sso.get_profile_and_token(code=back["code"][0])
    assert setup.sdk.sso.get_profile_and_token(code=back["code"][0]).profile.email == "ada@example.com"


def test_rotated_signing_keys_are_fetched_again(setup: Setup) -> None:
    assert "code" in setup.sign_in("Grace Hopper")
    setup.graph.sign_in.rotate(keep_old=False)
    back = setup.sign_in("Ada Lovelace")
    assert "code" in back, back  # signed by a key the tenant published after the first sign-ins
    assert setup.sdk.sso.get_profile_and_token(code=back["code"][0]).profile.email == "ada@example.com"


@pytest.mark.parametrize(
    ("tamper", "sign_with"),
    [
        ({"aud": "00000000-0000-4000-8000-0000000000aa"}, None),
        ({"iss": "https://login.example/other/v2.0"}, None),
        ({"tid": "00000000-0000-4000-8000-0000000000bb"}, None),
        ({"exp": 1_000_000_000, "iat": 999_999_000, "nbf": 999_999_000}, None),
        ({"nonce": "not-this-sign-in"}, None),
        ({}, "stranger"),
        ({}, "none"),
        ({}, "hs256"),
    ],
    ids=["audience", "issuer", "tenant", "expired", "nonce", "unknown-key", "unsigned", "hmac"],
)
def test_an_id_token_that_fails_any_check_is_refused(
    setup: Setup, tamper: dict[str, object], sign_with: str | None
) -> None:
    setup.graph.sign_in.tamper, setup.graph.sign_in.sign_with = tamper, sign_with
    back = setup.sign_in("Ada Lovelace")
    assert back["error"] == ["access_denied"] and "code" not in back
    assert "refused" in back["error_description"][0]
    with setup.rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sso_codes)).scalar() == 0


def test_a_state_works_once(setup: Setup) -> None:
    setup.graph.sign_in.signed_in = setup.ids["Ada Lovelace"]
    url = setup.sdk.sso.get_authorization_url(organization=setup.org, redirect_uri=HOST, state="s")
    page = setup.browser.get(setup.browser.get(url).headers["location"])
    action, fields = _form(page.text)
    assert setup.browser.post(action, data=fields).status_code == 303
    again = setup.browser.post(action, data=fields)  # the same form posted twice (a replay)
    assert again.status_code == 400 and again.json()["message"].startswith("state: no sign-in is waiting")
