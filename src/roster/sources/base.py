"""What a directory type provides: the registry's entry (see ``roster.sources``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from roster.connectors.base import ConfigError, Connector
from roster.domain.mapping import AttributeMapping, MappingError
from roster.settings import Settings

Directory = Mapping[str, Any]
"""A stored directory row: ``type``, ``config`` (the checked settings) and ``secret`` (sealed)."""


@dataclass(frozen=True)
class VerifyOutcome:
    """A pass-through password check: ``reason`` is ``ok`` or a stable refusal code."""

    ok: bool
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class SourceType:
    name: str
    label: str
    # settings as given (CLI options or API fields) and the secret -> the config to store
    check: Callable[[Mapping[str, Any], str | None], dict[str, Any]]
    # the stored directory, its secret opened, and the settings -> a connector
    connector: Callable[[Directory, str, Settings], Connector] | None
    # the stored directory, its secret opened, the settings, a bind name, a password
    verify_password: Callable[[Directory, str, Settings, str, str], VerifyOutcome] | None = None
    secret_field: str | None = None  # the setting stored encrypted (e.g. bind_password)
    # config keys whose change means the stored secret must be given again (it is only ever
    # sent to the server it was given for)
    connection_fields: tuple[str, ...] = ()
    # pushed by the provider (SCIM): Roster issues the endpoint's bearer tokens
    pushed: bool = False


def check_mapping(
    given: Any, defaults: AttributeMapping | None = None
) -> tuple[dict[str, dict[str, str]], AttributeMapping]:
    """A directory's attribute overrides (``{"user": {...}, "group": {...}}``) on its type's
    defaults: (what to store, the mapping they give)."""
    mapping = dict(given or {})
    unknown = set(mapping) - {"user", "group"}
    if unknown:
        raise ConfigError(f"mapping: unknown section {sorted(unknown)[0]!r}; use 'user' and 'group'")
    try:
        parsed = AttributeMapping.from_overrides(mapping.get("user"), mapping.get("group"), defaults)
    except MappingError as exc:
        raise ConfigError(str(exc)) from None
    return {k: dict(v) for k, v in mapping.items()}, parsed


def check_near_real_time(seconds: Any) -> None:
    if seconds is not None and not 2 <= seconds <= 86400:
        raise ConfigError("near_real_time_seconds: must be between 2 and 86400")
