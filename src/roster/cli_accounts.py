"""``roster`` commands for the application side: accounts, groups, sharing, login, alerts, mail, links."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import click
import sqlalchemy as sa

from roster.accounts import lifecycle, service
from roster.accounts.login import login as do_login
from roster.cli_settings import org_settings
from roster.cli_support import Failure, emit, handle_errors, json_option, runtime
from roster.notify.mail import deliver, readable
from roster.store import repo
from roster.store.db import iso
from roster.store.schema import accounts, app_groups, mail_outbox
from roster.sync.access_check import check_access


def _secret(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, err=True))


def _lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def _print_accounts(rows: list[dict[str, Any]]) -> None:
    for a in rows:
        managed = "directory" if a["directory_managed"] else "local"
        click.echo(f"{a['id']}  {a['email']:32} {a['role']:6} {managed:9} {a['status']}")


@click.group()
def account() -> None:
    """Accounts of the host application."""


@account.command("create")
@click.argument("org_id")
@click.argument("email")
@click.option("--name", default=None)
@click.option("--phone", default=None)
@click.option("--role", type=click.Choice(service.ROLES), default="member", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read a local password from standard input.")
@json_option
@handle_errors
def account_create(
    org_id: str,
    email: str,
    name: str | None,
    phone: str | None,
    role: str,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Create a local account; an e-mail that matches a directory user links it to the directory."""
    password = _secret(True, "") if password_stdin else None
    with runtime().engine.begin() as conn:
        row = service.account_view(service.create_account(conn, org_id, email, name, phone, role, password))
    emit(as_json, row, lambda: click.echo(row["id"]))


@account.command("list")
@click.argument("org_id")
@json_option
@handle_errors
def account_list(org_id: str, as_json: bool) -> None:
    """The organization's accounts, directory-managed and local."""
    with runtime().engine.connect() as conn:
        rows = [
            service.account_view(dict(r))
            for r in conn.execute(
                sa.select(accounts).where(accounts.c.organization_id == org_id).order_by(accounts.c.id)
            ).mappings()
        ]
    emit(as_json, rows, lambda: _print_accounts(rows))


@account.command("update")
@click.argument("account_id")
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--phone", default=None)
@click.option("--role", type=click.Choice(service.ROLES), default=None)
@click.option("--disable/--enable", "disabled", default=None)
@click.option("--password-stdin", is_flag=True, help="Set a local password read from standard input.")
@json_option
@handle_errors
def account_update(
    account_id: str,
    name: str | None,
    email: str | None,
    phone: str | None,
    role: str | None,
    disabled: bool | None,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Change an account; directory-managed fields are refused, naming the field and the directory."""
    changes = {
        k: v
        for k, v in {"name": name, "email": email, "phone": phone, "role": role, "disabled": disabled}.items()
        if v is not None
    }
    if password_stdin:
        changes["password"] = _secret(True, "")
    with runtime().engine.begin() as conn:
        row = service.account_view(service.update_account(conn, account_id, None, changes))
    emit(as_json, row, lambda: click.echo(f"{row['id']} updated"))


@click.group()
def group() -> None:
    """Application groups: from directories, and local ones."""


@group.command("list")
@click.argument("org_id")
@json_option
@handle_errors
def group_list(org_id: str, as_json: bool) -> None:
    """The organization's groups, directory and local."""
    with runtime().engine.connect() as conn:
        rows = [
            service.group_view(dict(r))
            for r in conn.execute(
                sa.select(app_groups).where(app_groups.c.organization_id == org_id).order_by(app_groups.c.id)
            ).mappings()
        ]
    emit(
        as_json, rows, lambda: _lines(f"{g['id']}  {g['name']:30} {g['source']:9} {g['state']}" for g in rows)
    )


@group.command("create")
@click.argument("org_id")
@click.argument("name")
@json_option
@handle_errors
def group_create(org_id: str, name: str, as_json: bool) -> None:
    """Create a local group beside the directory's groups."""
    with runtime().engine.begin() as conn:
        row = service.group_view(service.create_local_group(conn, org_id, name))
    emit(as_json, row, lambda: click.echo(row["id"]))


@group.command("members")
@click.argument("group_id")
@click.option("--effective", is_flag=True, help="Include members of nested groups.")
@json_option
@handle_errors
def group_members(group_id: str, effective: bool, as_json: bool) -> None:
    """The accounts in a group."""
    with runtime().engine.connect() as conn:
        org = service.get_group(conn, group_id)["organization_id"]
        rows = service.members(conn, org, group_id, effective)
    emit(as_json, rows, lambda: _print_accounts(rows))


@group.command("add-member")
@click.argument("group_id")
@click.argument("member_id")
@json_option
@handle_errors
def group_add(group_id: str, member_id: str, as_json: bool) -> None:
    """Add an account to a local group."""
    with runtime().engine.begin() as conn:
        service.add_member(conn, service.get_group(conn, group_id)["organization_id"], group_id, member_id)
    done = {"group_id": group_id, "member_id": member_id, "member": True}
    emit(as_json, done, lambda: click.echo(f"{member_id} is a member of {group_id}"))


@group.command("remove-member")
@click.argument("group_id")
@click.argument("member_id")
@json_option
@handle_errors
def group_remove(group_id: str, member_id: str, as_json: bool) -> None:
    """Remove an account from a local group."""
    with runtime().engine.begin() as conn:
        service.remove_member(conn, service.get_group(conn, group_id)["organization_id"], group_id, member_id)
    done = {"group_id": group_id, "member_id": member_id, "member": False}
    emit(as_json, done, lambda: click.echo(f"{member_id} is no longer a member of {group_id}"))


@click.command()
@click.argument("org_id")
@click.argument("resource_id")
@click.argument("principal_id")
@click.option("--revoke", is_flag=True)
@json_option
@handle_errors
def grant(org_id: str, resource_id: str, principal_id: str, revoke: bool, as_json: bool) -> None:
    """Share RESOURCE_ID with an account or a group (or --revoke it)."""
    with runtime().engine.begin() as conn:
        (service.revoke if revoke else service.grant)(conn, org_id, resource_id, principal_id)
    done = {"resource_id": resource_id, "principal_id": principal_id, "granted": not revoke}
    emit(
        as_json,
        done,
        lambda: click.echo(f"{'revoked' if revoke else 'granted'}: {principal_id} on {resource_id}"),
    )


@click.command()
@click.argument("org_id")
@click.argument("account_id")
@click.argument("resource_id")
@json_option
@handle_errors
def access(org_id: str, account_id: str, resource_id: str, as_json: bool) -> None:
    """Can ACCOUNT_ID access RESOURCE_ID? Exit 1 when not."""
    with runtime().engine.connect() as conn:
        answer = service.can_access(conn, org_id, account_id, resource_id)
    emit(
        as_json,
        answer,
        lambda: click.echo(f"{'allowed' if answer['allowed'] else 'denied'}: {answer['reason']}"),
    )
    if not answer["allowed"]:
        sys.exit(1)


@click.command("login")
@click.argument("org_id")
@click.argument("email")
@json_option
@handle_errors
def login_command(org_id: str, email: str, as_json: bool) -> None:
    """Try a login as the host application would (password from a prompt or standard input)."""
    result = do_login(runtime(), org_id, email, _secret(not sys.stdin.isatty(), "password"))
    emit(as_json, {"reason": result.reason, "account": result.account}, lambda: click.echo(result.reason))
    if not result.ok:
        sys.exit(1)


@click.group()
def mail() -> None:
    """The mail outbox."""


@mail.command("list")
@click.argument("org_id")
@json_option
@handle_errors
def mail_list(org_id: str, as_json: bool) -> None:
    """The organization's mail outbox (without SMTP, the way to read the mail)."""
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = [
            {
                "id": r["id"],
                "to": r["recipient"],
                "subject": r["subject"],
                "body": readable(r["body"], rt.box),
                "sent_at": iso(r["sent_at"]),
            }
            for r in conn.execute(
                sa.select(mail_outbox)
                .where(mail_outbox.c.organization_id == org_id)
                .order_by(mail_outbox.c.id)
            ).mappings()
        ]
    emit(
        as_json,
        rows,
        lambda: _lines(
            f"{m['id']} {'sent' if m['sent_at'] else 'queued':6} {m['to']}: {m['subject']}" for m in rows
        ),
    )


@mail.command("send")
@json_option
@handle_errors
def mail_send(as_json: bool) -> None:
    """Deliver queued mail now over SMTP."""
    rt = runtime()
    if not rt.settings.smtp_host:
        raise Failure("no SMTP server: set ROSTER_SMTP_HOST (mail stays in the outbox meanwhile)")
    sent = deliver(rt.engine, rt.settings)
    emit(as_json, {"sent": sent}, lambda: click.echo(f"sent {sent}"))


@click.command("open-link")
@click.argument("token")
@click.option("--password-stdin", is_flag=True)
@json_option
@handle_errors
def open_link(token: str, password_stdin: bool, as_json: bool) -> None:
    """Carry out an e-mailed link (the part after /actions/)."""
    rt = runtime()
    password = _secret(True, "") if password_stdin else None
    with rt.engine.begin() as conn:
        result = lifecycle.perform(conn, rt.settings, token, password)
    emit(as_json, result, lambda: click.echo(f"done: {result['done']}"))


def register(main: click.Group) -> None:
    for command in (account, group, grant, access, login_command, mail, open_link):
        main.add_command(command)
    main.add_command(org_settings, "settings")
    directory = main.commands["directory"]
    assert isinstance(directory, click.Group)

    @directory.command("disable")
    @click.argument("directory_id")
    @json_option
    @handle_errors
    def directory_disable(directory_id: str, as_json: bool) -> None:
        """Ask the admins to confirm disabling (nothing changes until one does)."""
        rt = runtime()
        with rt.engine.begin() as conn:
            sent = lifecycle.request_disable(conn, rt.settings, directory_id)
        text = f"confirmation link sent to {sent} admin(s); nothing changes until one confirms"
        emit(as_json, {"directory_id": directory_id, "confirmations_sent": sent}, lambda: click.echo(text))

    @directory.command("enable")
    @click.argument("directory_id")
    @json_option
    @handle_errors
    def directory_enable(directory_id: str, as_json: bool) -> None:
        """Enable a disabled directory; the next sync links its accounts again."""
        with runtime().engine.begin() as conn:
            row = lifecycle.enable(conn, directory_id)
        text = f"{directory_id}: {row['state']} (the next sync links accounts again)"
        emit(as_json, {"directory_id": directory_id, "state": row["state"]}, lambda: click.echo(text))

    @directory.command("check")
    @click.argument("directory_id")
    @json_option
    @handle_errors
    def directory_check(directory_id: str, as_json: bool) -> None:
        """Run the access check now (alerts once per outage). Exit 1 when not reachable."""
        rt = runtime()
        ok = check_access(rt, directory_id)
        with rt.engine.connect() as conn:
            error = repo.get_directory(conn, directory_id)["last_check_error"]
        text = "reachable" if ok else f"NOT reachable (alert sent if this is a new outage): {error}"
        emit(as_json, {"directory_id": directory_id, "ok": ok, "error": error}, lambda: click.echo(text))
        if not ok:
            sys.exit(1)
