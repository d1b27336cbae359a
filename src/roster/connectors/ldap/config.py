"""A validated LDAP connection configuration (a frozen value)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from roster.connectors.base import ConfigError, ConnectorError, FailureReason
from roster.domain.ldap_path import SearchPath, search_roots
from roster.domain.mapping import AttributeMapping
from roster.egress import Reach, Refused


@dataclass(frozen=True)
class LdapConfig:
    url: str
    bind_dn: str
    bind_password: str
    search_paths: tuple[str, ...]
    flavour: str = "ldap"
    ca_file: str | None = None
    start_tls: bool = False
    insecure_skip_tls_verify: bool = False
    connect_timeout: float = 10.0
    operation_timeout: float = 120.0
    page_size: int = 1000
    member_range_size: int | None = None  # ask for group members in ranges of this size (AD style)
    change_detection: str = "auto"  # auto | dirsync | usn | syncrepl | off
    mapping: AttributeMapping = field(default_factory=AttributeMapping)
    reach: Reach | None = None  # a URL an organization entered: only the addresses this allows

    @property
    def roots(self) -> tuple[SearchPath, ...]:
        return search_roots(self.search_paths)


def refused_for_tenant(url: str) -> str:
    """The one answer an organization gets for every failure below LDAP (no port scanning)."""
    return (
        f"no LDAP server answered at {url} (the name does not resolve, the address is not one this "
        "server connects to for organizations, the port refused or did not answer, or the TLS "
        "handshake failed); check the host, port and scheme"
    )


def check_reach(url: str, reach: Reach) -> None:
    """Refuse (as unreachable, in the uniform words) a URL whose host ``reach`` does not allow."""
    parts = urlsplit(url)
    if parts.scheme == "ldapi" or not parts.hostname:
        raise ConnectorError(FailureReason.UNREACHABLE, refused_for_tenant(url))
    try:
        reach.addresses(parts.hostname, parts.port or (636 if parts.scheme == "ldaps" else 389))
    except Refused:
        raise ConnectorError(FailureReason.UNREACHABLE, refused_for_tenant(url)) from None


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "ldapi" and parts.netloc and not parts.path.strip("/"):
        return url.rstrip("/")  # a local socket, e.g. ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi
    if parts.scheme not in ("ldap", "ldaps"):
        raise ConfigError(f"url: {url!r} must start with ldap://, ldaps:// or ldapi://")
    if not parts.hostname:
        raise ConfigError(f"url: {url!r} names no host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"url: {url!r} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"url: {url!r} must be just scheme://host[:port]")
    return url.rstrip("/")


def validate(config: LdapConfig) -> LdapConfig:
    """Check every field that can be checked without a network; raise ConfigError."""
    from roster.connectors.ldap.vendors import get_flavour
    from roster.domain.ldap_path import SearchPathError

    validate_url(config.url)
    try:
        get_flavour(config.flavour)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not config.bind_dn.strip():
        raise ConfigError("bind_dn: is empty")
    try:
        config.roots  # noqa: B018
    except SearchPathError as exc:
        raise ConfigError(f"search_path: {exc}") from None
    if config.ca_file is not None and not Path(config.ca_file).is_file():
        raise ConfigError(f"ca_file: {config.ca_file!r} is not a readable file")
    if config.start_tls and config.url.startswith("ldaps://"):
        raise ConfigError("start_tls: not with ldaps:// (the connection is already TLS)")
    if config.member_range_size is not None and not 1 <= config.member_range_size <= 100000:
        raise ConfigError("member_range_size: must be between 1 and 100000")
    if config.change_detection not in ("auto", "dirsync", "usn", "syncrepl", "off"):
        raise ConfigError(
            f"change_detection: {config.change_detection!r} is not one of auto, dirsync, usn, syncrepl, off"
        )
    if not 1 <= config.page_size <= 10000:
        raise ConfigError("page_size: must be between 1 and 10000")
    return config
