"""Build the connector for a stored directory (decrypting its secret)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from roster.connectors.base import Connector
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.connector import LdapConnector
from roster.crypto import SecretBox
from roster.domain.mapping import AttributeMapping
from roster.settings import Settings

LDAP_TYPES = ("ldap", "active_directory")


def ldap_config(directory: Mapping[str, Any], box: SecretBox, settings: Settings) -> LdapConfig:
    cfg = directory["config"]
    mapping = cfg.get("mapping") or {}
    return LdapConfig(
        url=cfg["url"],
        bind_dn=cfg["bind_dn"],
        bind_password=box.open(directory["secret"]) if directory["secret"] else "",
        search_paths=tuple(cfg["search_paths"]),
        flavour=directory["type"],
        ca_file=cfg.get("ca_file"),
        start_tls=bool(cfg.get("start_tls")),
        insecure_skip_tls_verify=bool(cfg.get("insecure_skip_tls_verify")),
        connect_timeout=settings.ldap_connect_timeout,
        operation_timeout=settings.ldap_operation_timeout,
        page_size=settings.ldap_page_size,
        member_range_size=cfg.get("member_range_size"),
        change_detection=cfg.get("change_detection") or "auto",
        mapping=AttributeMapping.from_overrides(mapping.get("user"), mapping.get("group")),
    )


def connector_for(directory: Mapping[str, Any], box: SecretBox, settings: Settings) -> Connector:
    if directory["type"] in LDAP_TYPES:
        return LdapConnector(ldap_config(directory, box, settings))
    raise ValueError(f"type: directories of type {directory['type']!r} cannot be synced yet")
