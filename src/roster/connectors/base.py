"""The connector interface and its errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from roster.domain.delta import Delta
from roster.domain.records import Snapshot

Progress = Callable[[int], None]
"""Called with the number of entries read so far."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the field's name."""


class FailureReason(StrEnum):
    UNREACHABLE = "unreachable"
    INVALID_CREDENTIALS = "invalid_credentials"
    TLS = "tls"
    TIMEOUT = "timeout"
    NO_SUCH_PATH = "no_such_path"
    SEARCH_FAILED = "search_failed"
    CONFIGURATION = "configuration"


class ConnectorError(Exception):
    """Reading the directory failed; ``reason`` is a stable code, the message says why."""

    def __init__(self, reason: FailureReason, message: str, diagnostic: str = "") -> None:
        self.reason = reason
        self.diagnostic = diagnostic  # the server's own words, when they matter to a caller
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PathCheck:
    path: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ConnectionReport:
    ok: bool
    server: str
    detail: str
    paths: tuple[PathCheck, ...] = ()
    reason: FailureReason | None = None  # why it failed, when it did


class Connector(Protocol):
    """Reads one directory; never writes the store. Inputs and outputs are frozen values."""

    def snapshot(
        self, progress: Progress | None = None, previous: Mapping[str, str] | None = None
    ) -> Snapshot:
        """Read the whole directory. Raises ConnectorError; never returns a partial read.

        ``previous``: external id -> entry fingerprint of the cached users; a user whose entry
        has the same fingerprint may be reported in ``Snapshot.unchanged`` instead of decoded."""
        ...

    def test(self) -> ConnectionReport:
        """A cheap bind and a base search of every configured path."""
        ...


class IncrementalConnector(Connector, Protocol):
    def changes(self, cursor: str, progress: Progress | None = None) -> Delta | None:
        """What changed since ``cursor`` (from a Snapshot or an earlier Delta), or None when the
        cursor cannot be used and a full run is needed. A source that can only list what is
        still there (a syncrepl present phase) says so in ``Delta.present``; the ingest
        compares that with the cache."""
        ...
