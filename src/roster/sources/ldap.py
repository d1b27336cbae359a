"""The LDAP directory types: OpenLDAP-style ``ldap`` and ``active_directory``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from roster.connectors.base import ConfigError, Connector
from roster.connectors.ldap.bind import bind_name, verify_password
from roster.connectors.ldap.config import LdapConfig, validate
from roster.connectors.ldap.connector import LdapConnector
from roster.domain.ldap_path import SearchPathError, search_roots
from roster.domain.mapping import AttributeMapping
from roster.egress import directory_reach
from roster.settings import Settings
from roster.sources.base import Directory, SourceType, VerifyOutcome, check_mapping, check_near_real_time

CHANGE_DETECTION = ("auto", "dirsync", "usn", "syncrepl", "off")


def ldap_config(directory: Directory, password: str, settings: Settings) -> LdapConfig:
    cfg = directory["config"]
    mapping = cfg.get("mapping") or {}
    return LdapConfig(
        url=cfg["url"],
        bind_dn=cfg["bind_dn"],
        bind_password=password,
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
        reach=directory_reach(settings.directory_allowed_networks) if cfg.get("tenant_url") else None,
    )


def _connector(directory: Directory, password: str, settings: Settings) -> Connector:
    return LdapConnector(ldap_config(directory, password, settings))


def _verify(
    directory: Directory, password: str, settings: Settings, login: str, secret: str
) -> VerifyOutcome:
    outcome = verify_password(ldap_config(directory, password, settings), login, secret)
    return VerifyOutcome(outcome.ok, str(outcome.reason), outcome.detail)


def _check_schedule(near_real_time: Any, change_detection: str) -> None:
    check_near_real_time(near_real_time)
    if near_real_time is not None and change_detection == "off":
        raise ConfigError("near_real_time_seconds: needs incremental runs (change_detection is off)")


def _check_template(template: str | None) -> None:
    if template is None:
        return
    try:
        bind_name(template, "probe")
    except ValueError as exc:
        text = str(exc)
        raise ConfigError(
            text if text.startswith("user_bind_template") else f"user_bind_template: {text}"
        ) from None


def check_agent(flavour: str, given: Mapping[str, Any], password: str | None) -> dict[str, Any]:
    """A directory read through its on-prem agent: the server keeps what to read and how to map
    it; the URL, bind DN and password stay on the agent's host."""
    for field in ("url", "bind_dn", "ca_file"):
        if given.get(field):
            raise ConfigError(f"{field}: is the agent's (give it to `roster agent enroll`), not the server's")
    if password:
        raise ConfigError("bind_password: stays on the agent's host; give it to `roster agent enroll`")
    if given.get("search_paths") in (None, "", (), []):
        raise ConfigError(f"search_paths: is required for a directory of type {flavour!r}")
    mapping, _ = check_mapping(given.get("mapping"))
    try:
        roots = search_roots(tuple(given["search_paths"]))
    except SearchPathError as exc:
        raise ConfigError(f"search_path: {exc}") from None
    change_detection = given.get("change_detection") or "auto"
    _check_schedule(given.get("near_real_time_seconds"), change_detection)
    _check_template(given.get("user_bind_template"))
    return {
        "connection": "agent",
        "user_bind_template": given.get("user_bind_template"),
        "change_detection": change_detection,
        "near_real_time_seconds": given.get("near_real_time_seconds"),
        "search_paths": [str(p) for p in roots],
        "mapping": mapping,
        "member_range_size": given.get("member_range_size"),
    }


def check(flavour: str, given: Mapping[str, Any], password: str | None) -> dict[str, Any]:
    """Validate every LDAP setting that needs no network; return the config to store."""
    connection = given.get("connection") or "direct"
    if connection == "agent":
        return check_agent(flavour, given, password)
    if connection != "direct":
        raise ConfigError(f"connection: {connection!r} is not supported; use 'direct' or 'agent'")
    for required in ("url", "bind_dn", "search_paths"):
        if given.get(required) in (None, "", (), []):
            raise ConfigError(f"{required}: is required for a directory of type {flavour!r}")
    if not password:
        raise ConfigError(f"bind_password: is required for a directory of type {flavour!r}")
    mapping, parsed = check_mapping(given.get("mapping"))
    change_detection = given.get("change_detection") or "auto"
    config = LdapConfig(
        url=given["url"],
        bind_dn=given["bind_dn"],
        bind_password=password or "",
        search_paths=tuple(given["search_paths"]),
        flavour=flavour,
        ca_file=given.get("ca_file"),
        start_tls=bool(given.get("start_tls")),
        insecure_skip_tls_verify=bool(given.get("insecure_skip_tls_verify")),
        mapping=parsed,
        member_range_size=given.get("member_range_size"),
        change_detection=change_detection,
    )
    validate(config)
    _check_schedule(given.get("near_real_time_seconds"), change_detection)
    _check_template(given.get("user_bind_template"))
    return {
        "user_bind_template": given.get("user_bind_template"),
        "change_detection": change_detection,
        "near_real_time_seconds": given.get("near_real_time_seconds"),
        "url": config.url.rstrip("/"),
        "bind_dn": config.bind_dn,
        "search_paths": [str(p) for p in search_roots(config.search_paths)],
        "ca_file": config.ca_file,
        "start_tls": config.start_tls,
        "insecure_skip_tls_verify": config.insecure_skip_tls_verify,
        "mapping": mapping,
        "member_range_size": config.member_range_size,
    }


def _source(name: str, label: str) -> SourceType:
    return SourceType(
        name=name,
        label=label,
        check=lambda given, password: check(name, given, password),
        connector=_connector,
        verify_password=_verify,
        secret_field="bind_password",
        connection_fields=("url", "bind_dn", "start_tls", "ca_file", "insecure_skip_tls_verify"),
    )


LDAP_SOURCES = (
    _source("ldap", "LDAP (OpenLDAP and compatible)"),
    _source("active_directory", "Active Directory"),
)
