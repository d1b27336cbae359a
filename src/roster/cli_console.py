"""``roster operator``: the people who run Roster for every organization sign in to the console."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from roster import setup_links
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


@click.group("setup-link")
def setup_link() -> None:
    """Self-serve setup links: the customer's IT admin connects the directory without an account."""


@setup_link.command("create")
@click.argument("organization_id")
@click.option("--directory", "directory_id", default=None, help="Continue setting up this directory.")
@click.option("--success-url", default=None, help="Where the IT admin goes when setup is done.")
@click.option("--return-url", default=None, help="Where the page's 'back' link goes.")
@click.option("--hours", type=click.FloatRange(0.05, 24 * 30), default=None, help="Valid this long (72).")
@json_option
@handle_errors
def setup_link_create(
    organization_id: str,
    directory_id: str | None,
    success_url: str | None,
    return_url: str | None,
    hours: float | None,
    as_json: bool,
) -> None:
    """A new setup link for ORGANIZATION_ID (the one before it stops working)."""
    rt = runtime()
    with rt.engine.begin() as conn:
        link, row = setup_links.create(
            conn,
            rt.settings,
            organization_id,
            directory_id=directory_id,
            success_url=success_url,
            return_url=return_url,
            ttl=timedelta(hours=hours) if hours else None,
        )
    data = {"link": link, "organization_id": organization_id, "expires_at": row["expires_at"]}
    emit(as_json, data, lambda: click.echo(f"{link}\n(valid until {row['expires_at']:%Y-%m-%d %H:%M} UTC)"))


@setup_link.command("revoke")
@click.argument("organization_id")
@json_option
@handle_errors
def setup_link_revoke(organization_id: str, as_json: bool) -> None:
    """Stop the organization's setup links from working."""
    rt = runtime()
    with rt.engine.begin() as conn:
        count = setup_links.revoke(conn, organization_id)
    emit(as_json, {"revoked": count}, lambda: click.echo(f"{count} link(s) revoked"))
