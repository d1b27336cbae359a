"""The ``azure`` directory type: Microsoft Entra ID read through Microsoft Graph.

The stored secret is the client secret, or (certificate credentials) the certificate's private
key PEM; the certificate itself is public and kept in the config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from roster.connectors.base import ConfigError, Connector
from roster.connectors.graph.config import GRAPH_MAPPING, Credential, GraphConfig, check_ids, hosts
from roster.domain.mapping import AttributeMapping
from roster.settings import Settings
from roster.sources.base import Directory, SourceType, check_mapping, check_near_real_time


def graph_config(directory: Directory, secret: str, settings: Settings) -> GraphConfig:
    cfg = directory["config"]
    mapping = cfg.get("mapping") or {}
    certificate = cfg.get("certificate_pem")
    credential = (
        Credential(private_key_pem=secret, certificate_pem=certificate)
        if certificate
        else Credential(secret=secret)
    )
    return GraphConfig(
        tenant_id=cfg["tenant_id"],
        client_id=cfg["client_id"],
        credential=credential,
        login_url=cfg["login_url"],
        graph_url=cfg["graph_url"],
        ca_file=cfg.get("ca_file"),
        upn_as_email=bool(cfg.get("upn_as_email")),
        mapping=AttributeMapping.from_overrides(mapping.get("user"), mapping.get("group"), GRAPH_MAPPING),
    )


def _connector(directory: Directory, secret: str, settings: Settings) -> Connector:
    from roster.connectors.graph.connector import GraphConnector  # msal loads only when needed

    return GraphConnector(graph_config(directory, secret, settings))


def check(given: Mapping[str, Any], secret: str | None) -> dict[str, Any]:
    """Validate every Entra setting that needs no network; return the config to store."""
    tenant_id, client_id = check_ids(given.get("tenant_id"), given.get("client_id"))
    login_url, graph_url = hosts(given.get("cloud"), given.get("login_url"), given.get("graph_url"))
    certificate = given.get("certificate_pem")
    if certificate is not None:
        _check_certificate(certificate)
    if not secret:
        field = "private_key" if certificate else "client_secret"
        raise ConfigError(f"{field}: is required for a directory of type 'azure'")
    mapping, _ = check_mapping(given.get("mapping"), GRAPH_MAPPING)
    near = given.get("near_real_time_seconds")
    check_near_real_time(near)
    return {
        "tenant_id": tenant_id,
        "client_id": client_id,
        "cloud": given.get("cloud") or "global",
        "login_url": login_url,
        "graph_url": graph_url,
        "ca_file": given.get("ca_file"),
        "certificate_pem": certificate,
        "upn_as_email": bool(given.get("upn_as_email")),
        "mapping": mapping,
        "near_real_time_seconds": near,
    }


def _check_certificate(pem: str) -> None:
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ConfigError("certificate: is not a PEM certificate") from None


def split_pem(text: str) -> tuple[str, str]:
    """(private key PEM, certificate PEM) from one file holding both, as Entra's docs make them."""
    key = _block(text, "PRIVATE KEY")
    cert = _block(text, "CERTIFICATE")
    if key is None:
        raise ConfigError("certificate_file: holds no private key (-----BEGIN PRIVATE KEY-----)")
    if cert is None:
        raise ConfigError("certificate_file: holds no certificate (-----BEGIN CERTIFICATE-----)")
    return key, cert


def _block(text: str, label: str) -> str | None:
    for kind in (label, f"RSA {label}", f"EC {label}"):
        begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
        start = text.find(begin)
        if start >= 0 and text.find(end, start) > 0:
            return text[start : text.find(end, start) + len(end)] + "\n"
    return None


AZURE = SourceType(
    name="azure",
    label="Microsoft Entra ID (Azure AD)",
    check=check,
    connector=_connector,
    secret_field="client_secret",
    connection_fields=("tenant_id", "client_id", "login_url", "graph_url", "ca_file", "certificate_pem"),
)
