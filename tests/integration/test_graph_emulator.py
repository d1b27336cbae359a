"""The Graph and login emulator kept honest: Microsoft's own msal and msgraph-sdk read it, and see
what Roster's connector sees (the same users, groups, members and delta pages)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
import requests
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.groups.delta.delta_request_builder import DeltaRequestBuilder as GroupsDelta
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder as UsersDelta
from msgraph_core import GraphClientFactory

from roster.connectors.graph.config import GROUP_SELECT, USER_SELECT, Credential, GraphConfig
from roster.connectors.graph.connector import GraphConnector
from roster.demo.graph import App, GraphEmulator
from roster.demo.graph_tenant import Tenant, new_guid
from tests.support.graph import SECRET, company, register_app


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path, Tenant(), page_size=2, members_per_page=3).running() as emulator:
        yield emulator


SESSIONS: list[requests.Session] = []


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    while SESSIONS:
        SESSIONS.pop().close()


def _msal_app(graph: GraphEmulator, client_id: str, credential: Any) -> msal.ConfidentialClientApplication:
    session = requests.Session()
    SESSIONS.append(session)
    session.request = lambda *a, **k: requests.Session.request(
        session, *a, **{**k, "verify": str(graph.ca_file)}
    )  # type: ignore[method-assign]
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=f"{graph.base}/{graph.tenant.tenant_id}",
        http_client=session,
        instance_discovery=False,
    )


class MsalCredential:
    """An async token credential for msgraph-sdk, backed by msal's client credentials flow."""

    def __init__(self, app: msal.ConfidentialClientApplication) -> None:
        self.app = app

    async def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        result = await asyncio.to_thread(self.app.acquire_token_for_client, scopes=list(scopes))
        return AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))

    async def close(self) -> None:
        return None


def _sdk(graph: GraphEmulator, app: App) -> tuple[GraphServiceClient, httpx.AsyncClient, Any]:
    context = ssl.create_default_context()
    context.load_verify_locations(graph.ca_file)
    plain = httpx.AsyncClient(verify=context)
    inner = plain._transport  # the SDK's middleware transport does not close the one it wraps
    http = GraphClientFactory.create_with_default_middleware(client=plain)
    credential = MsalCredential(_msal_app(graph, app.client_id, SECRET))
    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=[f"{graph.base}/.default"],
        allowed_hosts=["localhost"],  # type: ignore[arg-type]
    )
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = graph.graph_url
    return GraphServiceClient(request_adapter=adapter), http, inner


async def _sdk_rounds(client: GraphServiceClient) -> dict[str, Any]:
    """A first delta round of users and groups as the SDK reads it: ids, mails, members."""
    users: dict[str, Any] = {}
    config = RequestConfiguration(
        query_parameters=UsersDelta.DeltaRequestBuilderGetQueryParameters(select=USER_SELECT.split(","))
    )
    page = await client.users.delta.get(request_configuration=config)
    pages = 1
    while page is not None:
        users.update({u.id: u.mail or (u.other_mails or [None])[0] for u in page.value or []})
        if not page.odata_next_link:
            break
        page = await client.users.delta.with_url(page.odata_next_link).get()
        pages += 1
    members: dict[str, set[str]] = {}
    gconfig = RequestConfiguration(
        query_parameters=GroupsDelta.DeltaRequestBuilderGetQueryParameters(select=GROUP_SELECT.split(","))
    )
    gpage = await client.groups.delta.get(request_configuration=gconfig)
    delta_link = None
    while gpage is not None:
        for g in gpage.value or []:
            listed = (g.additional_data or {}).get("members@delta") or []
            members.setdefault(g.id, set()).update(str(m["id"]) for m in listed)
        delta_link = gpage.odata_delta_link
        if not gpage.odata_next_link:
            break
        gpage = await client.groups.delta.with_url(gpage.odata_next_link).get()
    return {"users": users, "members": members, "user_pages": pages, "delta_link": delta_link}


def test_msgraph_sdk_reads_the_same_directory_as_the_connector(graph: GraphEmulator) -> None:
    ids = company(graph.tenant)
    app = register_app(graph)
    client, http, inner = _sdk(graph, app)

    async def read() -> dict[str, Any]:
        try:
            return await _sdk_rounds(client)
        finally:
            await http.aclose()
            await inner.aclose()

    seen = asyncio.run(read())
    config = GraphConfig(
        graph.tenant.tenant_id,
        app.client_id,
        Credential(secret=SECRET),
        graph.base,
        graph.graph_url,
        str(graph.ca_file),
    )
    snapshot = GraphConnector(config).snapshot()
    assert seen["users"] == {u: r.email for u, r in snapshot.users.items()}
    assert seen["user_pages"] == 3  # five users, two a page
    device_free = {
        g: {m for m in ms if m in seen["users"] or m in seen["members"]} for g, ms in seen["members"].items()
    }
    mine: dict[str, set[str]] = {g: set() for g in snapshot.groups}
    for g, m in snapshot.memberships:
        mine[g].add(m)
    assert device_free == mine
    assert ids["eng"] in mine[ids["all"]]
    assert seen["delta_link"] and "$deltatoken=" in seen["delta_link"]


def _certificate() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roster-test-app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certificate_credentials_sign_in_and_a_wrong_certificate_is_refused(graph: GraphEmulator) -> None:
    key_pem, cert_pem = _certificate()
    app = graph.register(App(client_id=new_guid(), certificate_pem=cert_pem.encode()))
    credential = {"private_key": key_pem, "public_certificate": cert_pem}
    token = _msal_app(graph, app.client_id, credential).acquire_token_for_client(
        scopes=[f"{graph.base}/.default"]
    )
    assert "access_token" in token
    other_key, _ = _certificate()
    refused = _msal_app(graph, app.client_id, {"private_key": other_key, "public_certificate": cert_pem})
    answer = refused.acquire_token_for_client(scopes=[f"{graph.base}/.default"])
    assert answer.get("error") == "invalid_client" and 700027 in answer["error_codes"]
