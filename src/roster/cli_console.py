"""``roster operator``: the people who run Roster for every organization sign in to the console."""

from __future__ import annotations

import sys

import click

from roster.accounts.passwords import WeakPassword
from roster.cli_support import emit, handle_errors, json_option, runtime
from roster.web.signin import create_operator


@click.group()
def operator() -> None:
    """Operator accounts of the admin console (every organization)."""


@operator.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@handle_errors
def operator_create(email: str, password_stdin: bool, as_json: bool) -> None:
    """Create an operator who signs in at the console with EMAIL."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    try:
        oid = create_operator(runtime(), email, password)
    except WeakPassword as exc:
        raise click.UsageError(str(exc)) from None
    emit(as_json, {"id": oid, "email": email.strip()}, lambda: click.echo(f"operator {email.strip()}: {oid}"))
