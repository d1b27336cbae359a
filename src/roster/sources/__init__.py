"""The registry of directory types: one entry per source, nothing outside it tests the type.

An entry names its configuration check (every field checked without a network, errors that
start with the field's name), how its stored secret is used, its connector factory (a pull
source; pushed sources such as SCIM have none) and its pass-through password check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine

from roster.connectors.base import ConfigError, Connector
from roster.crypto import SecretBox
from roster.settings import Settings
from roster.sources.azure import AZURE
from roster.sources.base import Directory, SourceType, VerifyOutcome
from roster.sources.ldap import LDAP_SOURCES
from roster.sources.scim import SCIM

__all__ = [
    "Directory",
    "SourceType",
    "VerifyOutcome",
    "connector_for",
    "open_secret",
    "password_check",
    "pulled_types",
    "source_type",
    "source_types",
]

_REGISTRY: dict[str, SourceType] = {s.name: s for s in (*LDAP_SOURCES, AZURE, SCIM)}


def source_types() -> dict[str, SourceType]:
    return dict(_REGISTRY)


def source_type(name: str) -> SourceType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"type: {name!r} is not supported; use one of {', '.join(_REGISTRY)}") from None


def password_check(
    directory: Directory, box: SecretBox, settings: Settings, engine: Engine
) -> Callable[[str, str], VerifyOutcome] | None:
    """How to check a password against this directory (a bind name, a password), or None."""
    if (directory["config"] or {}).get("connection") == "agent":
        connector = connector_for(directory, box, settings, engine)

        def through_agent(name: str, password: str) -> VerifyOutcome:
            reason, detail = connector.verify_password(name, password)  # type: ignore[attr-defined]
            return VerifyOutcome(reason == "ok", reason, detail)

        return through_agent
    verify = source_type(directory["type"]).verify_password
    if verify is None:
        return None
    secret = open_secret(directory, box)
    return lambda name, password: verify(directory, secret, settings, name, password)


def pulled_types() -> list[str]:
    """The types Roster reads itself (scheduled runs, access checks); pushed ones (SCIM) are not."""
    return [name for name, source in _REGISTRY.items() if source.connector is not None]


def open_secret(directory: Directory, box: SecretBox) -> str:
    return box.open(directory["secret"]) if directory["secret"] else ""


def connector_for(
    directory: Directory, box: SecretBox, settings: Settings, engine: Engine | None = None
) -> Connector:
    """How Roster reads this directory: directly, or (``connection: agent``) through its on-prem
    agent, whose tasks go through the store (``engine``)."""
    source = source_type(directory["type"])
    if (directory["config"] or {}).get("connection") == "agent":
        if engine is None:
            raise ConfigError("connection: a directory read through an agent needs the store")
        from roster.agent.connector import AgentConnector

        return AgentConnector(engine, directory, timedelta(seconds=settings.agent_task_seconds))
    if source.connector is None:
        raise ConfigError(f"type: directories of type {directory['type']!r} are not read by Roster")
    return source.connector(directory, open_secret(directory, box), settings)
