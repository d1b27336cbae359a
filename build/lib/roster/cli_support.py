"""Helpers shared by the ``roster`` command's modules: errors, --json, output."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
import sqlalchemy.exc
from rich.console import Console

from roster.accounts.lifecycle import LinkError
from roster.accounts.service import Conflict, ManagedField
from roster.connectors.base import ConfigError
from roster.crypto import SecretKeyMissing
from roster.runtime import Runtime, open_runtime
from roster.store.jobs import DirectoryBusy
from roster.store.repo import NotFound
from roster.sync.approvals import NotPending
from roster.sync.pipeline import DirectoryDisabled

F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True)
out = Console()


class Failure(click.ClickException):
    exit_code = 1


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
        except (ManagedField, Conflict, LinkError, DirectoryDisabled, DirectoryBusy, NotPending) as exc:
            raise Failure(str(exc)) from None
        except (NotFound, SecretKeyMissing) as exc:
            raise Failure(str(exc.args[0] if exc.args else exc)) from None
        except sqlalchemy.exc.OperationalError as exc:
            raise Failure(f"the store at ROSTER_DATABASE_URL cannot be used: {exc.orig}") from None

    return wrapper  # type: ignore[return-value]


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def emit(as_json: bool, data: Any, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        text()


def runtime() -> Runtime:
    return open_runtime()


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A store row as JSON-friendly values (times in ISO 8601; no secrets)."""
    from roster.store.db import iso

    return {k: iso(v) if hasattr(v, "tzinfo") else v for k, v in row.items() if k != "secret"}
