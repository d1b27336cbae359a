"""Entra settings checked without a network: ids, clouds, hosts, certificates, redirect URIs."""

from __future__ import annotations

import pytest

from roster.connectors.base import ConfigError
from roster.connectors.graph.config import hosts
from roster.sources.azure import check, split_pem
from roster.sso.redirects import check_redirect_uris

TENANT, CLIENT = "7f0c2a55-1d2b-4c3a-9e8f-0123456789ab", "3a9e1b22-4c5d-4e6f-8a9b-abcdefabcdef"


def test_clouds_give_their_hosts_and_explicit_urls_win() -> None:
    assert hosts("usgov", None, None) == (
        "https://login.microsoftonline.us",
        "https://graph.microsoft.us/v1.0",
    )
    assert hosts("china", None, "https://proxy.example/v1.0/")[1] == "https://proxy.example/v1.0"
    with pytest.raises(ConfigError, match=r"^cloud: 'mars' is not a cloud"):
        hosts("mars", None, None)
    with pytest.raises(ConfigError, match=r"^login_url: must be an https:// URL"):
        hosts(None, "http://login.example", None)


@pytest.mark.parametrize(
    ("given", "secret", "message"),
    [
        (
            {"tenant_id": "not a tenant", "client_id": CLIENT},
            "s",
            "tenant_id: 'not a tenant' is not a tenant id",
        ),
        ({"tenant_id": TENANT, "client_id": "abc"}, "s", "client_id: 'abc' is not an application"),
        ({"tenant_id": TENANT, "client_id": CLIENT}, None, "client_secret: is required"),
        (
            {"tenant_id": TENANT, "client_id": CLIENT, "certificate_pem": "junk"},
            "k",
            "certificate: is not a PEM",
        ),
        (
            {"tenant_id": TENANT, "client_id": CLIENT, "mapping": {"user": {"emial": "mail"}}},
            "s",
            "mapping.user.emial",
        ),
        (
            {"tenant_id": TENANT, "client_id": CLIENT, "near_real_time_seconds": 1},
            "s",
            "near_real_time_seconds",
        ),
    ],
)
def test_bad_settings_name_the_field(given: dict[str, object], secret: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check(given, secret)
    assert str(caught.value).startswith(message)


def test_a_domain_tenant_and_defaults() -> None:
    config = check({"tenant_id": "contoso.onmicrosoft.com", "client_id": CLIENT}, "secret")
    assert config["cloud"] == "global" and config["graph_url"] == "https://graph.microsoft.com/v1.0"
    assert "secret" not in str(config)


def test_a_certificate_file_splits_into_key_and_certificate() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
    cert = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----"
    assert split_pem(f"{cert}\n{key}\n") == (key + "\n", cert + "\n")
    with pytest.raises(ConfigError, match=r"^certificate_file: holds no private key"):
        split_pem(cert)
    with pytest.raises(ConfigError, match=r"^certificate_file: holds no certificate"):
        split_pem(key)


def test_redirect_uris_are_absolute_https_or_loopback() -> None:
    ok = ["https://app.example/cb", "http://localhost:3000/cb", "https://app.example/cb"]
    assert check_redirect_uris(ok) == ok[:2]
    for bad in ("http://app.example/cb", "/relative", "https://app.example/cb#frag", "javascript:alert(1)"):
        with pytest.raises(ValueError, match=r"^sso_redirect_uris: "):
            check_redirect_uris([bad])
