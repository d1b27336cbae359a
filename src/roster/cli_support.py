"""Helpers shared by the ``roster`` command's modules: errors, --json, output."""

from __future__ import annotations

import functools
import json
import sys
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
out = Console(width=None if sys.stdout.isatty() else 200)  # piped: wide enough not to fold ids


class Failure(click.ClickException):
    """A command that could not do its work (exit 1); ``code`` names the kind for --json."""

    exit_code = 1

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


class Invalid(click.UsageError):
    """Input a command cannot take (exit 2), naming the field."""

    code = "invalid_input"


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, ValueError) as exc:
            raise Invalid(str(exc)) from None
        except (ManagedField, Conflict, LinkError, DirectoryDisabled, DirectoryBusy, NotPending) as exc:
            raise Failure(str(exc), "conflict") from None
        except NotFound as exc:
            raise Failure(str(exc.args[0] if exc.args else exc), "not_found") from None
        except SecretKeyMissing as exc:
            raise Failure(str(exc.args[0] if exc.args else exc), "secret_key") from None
        except sqlalchemy.exc.OperationalError as exc:
            raise Failure(f"the store at ROSTER_DATABASE_URL cannot be used: {exc.orig}", "store") from None

    return wrapper  # type: ignore[return-value]


def error_json(exc: click.ClickException) -> str:
    """``{"error": {"code", "message", "field"}}`` for an error of a command run with --json."""
    message = exc.format_message()
    field = None
    param = getattr(exc, "param", None)
    if param is not None and param.name:  # as the user wrote it: --bind-dn is bind_dn, --type is type
        named = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        field = named[0][2:].replace("-", "_") if named else param.name
    elif ":" in message and message.split(":", 1)[0].replace("_", "").replace(".", "").isalnum():
        field = message.split(":", 1)[0]
    code = getattr(exc, "code", None) or ("usage" if isinstance(exc, click.UsageError) else "failed")
    return json.dumps({"error": {"code": code, "message": message, "field": field}})


class JsonErrors(click.Group):
    """The ``roster`` group: with --json anywhere on the line, errors go to stderr as JSON (click's
    own usage errors too), with the same exit codes."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        given = args[0] if args else kwargs.get("args")
        argv = list(given) if given is not None else sys.argv[1:]
        if "--json" not in argv:
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.ClickException as exc:
            click.echo(error_json(exc), err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo(
                json.dumps({"error": {"code": "aborted", "message": "aborted", "field": None}}), err=True
            )
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def table(*columns: str, ids: tuple[str, ...] = ("id",)) -> Any:
    """A rich table whose id columns are never cut or wrapped (they are for copying); the other
    columns wrap when the terminal is narrow."""
    from rich.table import Table

    grid = Table()
    for name in columns:
        if name in ids:
            grid.add_column(name, no_wrap=True, min_width=34, overflow="ignore")
        else:
            grid.add_column(name, overflow="fold")
    return grid


def json_logs_option(fn: F) -> F:
    """--json for a long-running command: its log, one JSON object per line on stderr."""
    return click.option("--json", "as_json", is_flag=True, help="Log one JSON object per line.")(fn)


def json_logs(as_json: bool) -> None:
    if as_json:
        import logging

        from roster.logs import configure
        from roster.settings import get_settings

        level = logging.getLevelName(logging.getLogger().level)
        configure(get_settings().model_copy(update={"log_format": "json", "log_level": level}))


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
