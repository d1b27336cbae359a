"""``roster directory``: connect, list, show and test directories (LDAP, Active Directory, Entra ID)."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from roster.cli_support import emit, handle_errors, json_option, out, runtime
from roster.cli_support import plain as _plain
from roster.cli_support import table as make_table
from roster.connectors.base import ConfigError
from roster.directories import (
    DirectorySpec,
    create_directory,
    delete_directory,
    login_warnings,
    rotate_scim_token,
    scim_base_url,
    test_directory,
    update_directory_settings,
    verify_directory_password,
)
from roster.scim import requests_log
from roster.settings import get_settings
from roster.sources import source_types
from roster.sources.azure import split_pem
from roster.sources.scim import PROVIDERS
from roster.store import repo
from roster.store.db import iso


@click.group()
def directory() -> None:
    """Directory connections."""


def _mapping(pairs: tuple[str, ...], kind: str) -> dict[str, str]:
    result = {}
    for pair in pairs:
        field, sep, attribute = pair.partition("=")
        if not sep:
            raise ConfigError(f"--map-{kind}: {pair!r} must be FIELD=ATTRIBUTE, e.g. email=userPrincipalName")
        result[field.strip()] = attribute.strip()
    return result


@directory.command("create")
@click.option("--org", "org_id", required=True)
@click.option("--type", "dtype", type=click.Choice(sorted(source_types())), required=True)
@click.option("--name", required=True)
@click.option("--url", default=None, help="LDAP: ldap://host[:port] or ldaps://host[:port]")
@click.option("--bind-dn", default=None, help="LDAP: the account Roster binds as.")
@click.option(
    "--bind-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the bind password (else env ROSTER_BIND_PASSWORD).",
)
@click.option(
    "--search-path",
    "search_paths",
    multiple=True,
    help="LDAP, repeatable, e.g. 'CN=Users, DC=domain, DC=local'.",
)
@click.option("--tenant-id", default=None, help="Azure: the tenant's id (a GUID) or one of its domains.")
@click.option("--client-id", default=None, help="Azure: the app registration's application (client) id.")
@click.option(
    "--client-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Azure: file holding the client secret's value (else env ROSTER_CLIENT_SECRET).",
)
@click.option(
    "--certificate-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Azure: PEM file with the certificate and its private key (certificate credentials).",
)
@click.option("--cloud", type=click.Choice(["global", "usgov", "usgov-dod", "china"]), default=None)
@click.option(
    "--login-url", default=None, help="Azure: the login host, e.g. https://login.microsoftonline.com"
)
@click.option(
    "--graph-url", default=None, help="Azure: the Graph root, e.g. https://graph.microsoft.com/v1.0"
)
@click.option("--upn-as-email", is_flag=True, help="Azure: a user without mail/otherMails gets its UPN.")
@click.option(
    "--no-test",
    is_flag=True,
    help="Store the directory without testing the connection (by default a failed test stores nothing).",
)
@click.option(
    "--connection",
    type=click.Choice(["direct", "agent"]),
    default="direct",
    show_default=True,
    help="LDAP/AD: agent for a directory behind a firewall (no URL nor password on the server).",
)
@click.option(
    "--provider",
    type=click.Choice(sorted(PROVIDERS)),
    default=None,
    help="SCIM: the identity provider that pushes to this directory (default generic).",
)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--start-tls", is_flag=True)
@click.option("--insecure-skip-tls-verify", is_flag=True, help="Tests only: do not verify certificates.")
@click.option("--map-user", multiple=True, help="FIELD=ATTRIBUTE override, e.g. email=userPrincipalName")
@click.option("--map-group", multiple=True, help="FIELD=ATTRIBUTE override, e.g. name=cn")
@click.option(
    "--near-real-time",
    "near_real_time_seconds",
    type=int,
    default=None,
    help="Continuous incremental runs every N seconds while `roster serve` runs (e.g. 10).",
)
@click.option(
    "--change-detection",
    type=click.Choice(["auto", "dirsync", "usn", "syncrepl", "off"]),
    default="auto",
    show_default=True,
    help="How incremental runs find changes (off: full runs only).",
)
@click.option(
    "--user-bind-template",
    default=None,
    help="How a login becomes a bind name, e.g. '{login}@example.local' or 'EXAMPLE\\{login}'.",
)
@click.option(
    "--member-range-size",
    type=click.IntRange(1, 100000),
    default=None,
    help="Read group members in ranges of this size (Active Directory style).",
)
@json_option
@handle_errors
def directory_create(
    org_id: str,
    dtype: str,
    name: str,
    url: str,
    bind_dn: str,
    bind_password_file: Path | None,
    search_paths: tuple[str, ...],
    ca_file: str | None,
    start_tls: bool,
    insecure_skip_tls_verify: bool,
    map_user: tuple[str, ...],
    map_group: tuple[str, ...],
    near_real_time_seconds: int | None,
    change_detection: str,
    user_bind_template: str | None,
    member_range_size: int | None,
    tenant_id: str | None,
    client_id: str | None,
    client_secret_file: Path | None,
    certificate_file: Path | None,
    cloud: str | None,
    login_url: str | None,
    graph_url: str | None,
    upn_as_email: bool,
    provider: str | None,
    no_test: bool,
    connection: str,
    as_json: bool,
) -> None:
    """Add a directory to an organization (validated; its secret is stored encrypted).

    A SCIM directory prints its endpoint URL and bearer token, shown this once."""
    mapping = {"user": _mapping(map_user, "user"), "group": _mapping(map_group, "group")}
    if dtype == "scim":
        spec = DirectorySpec(org_id, name, dtype, {"provider": provider, "mapping": mapping})
        _print_scim(create_directory(runtime(), spec), as_json)
        return
    if dtype == "azure":
        settings: dict[str, Any] = {
            "tenant_id": tenant_id,
            "client_id": client_id,
            "cloud": cloud,
            "login_url": login_url,
            "graph_url": graph_url,
            "ca_file": ca_file,
            "upn_as_email": upn_as_email,
            "mapping": mapping,
            "near_real_time_seconds": near_real_time_seconds,
        }
        secret = _azure_secret(settings, client_secret_file, certificate_file)
        spec = DirectorySpec(org_id, name, dtype, settings, secret)
        _created(create_directory(runtime(), spec, test=not no_test), as_json)
        return
    password = _read_secret(bind_password_file, "bind_password", get_settings().bind_password)
    if not password and connection == "direct":
        raise ConfigError("bind_password: give --bind-password-file FILE or set ROSTER_BIND_PASSWORD")
    settings = {
        "connection": connection,
        "url": url,
        "bind_dn": bind_dn,
        "search_paths": search_paths,
        "ca_file": ca_file,
        "start_tls": start_tls,
        "insecure_skip_tls_verify": insecure_skip_tls_verify,
        "mapping": mapping,
        "member_range_size": member_range_size,
        "user_bind_template": user_bind_template,
        "change_detection": change_detection,
        "near_real_time_seconds": near_real_time_seconds,
    }
    row = create_directory(
        runtime(), DirectorySpec(org_id, name, dtype, settings, password), test=not no_test
    )
    _created(row, as_json)


def _created(row: dict[str, Any], as_json: bool) -> None:
    """The new directory's id (all of it with --json), and what it cannot do, on stderr."""
    warnings = login_warnings(row["config"])
    emit(as_json, {**_plain(row), "warnings": warnings}, lambda: click.echo(row["id"]))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)  # one line, unwrapped, for scripts that grep


@directory.command("update")
@click.argument("directory_id")
@click.option("--name", default=None)
@click.option("--url", default=None, help="LDAP: a new server URL (needs the bind password again).")
@click.option("--bind-dn", default=None, help="LDAP: a new bind account (needs its password).")
@click.option(
    "--bind-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A new bind password (or client secret), read from this file.",
)
@click.option("--search-path", "search_paths", multiple=True, help="Replaces the search paths (repeatable).")
@click.option("--start-tls/--no-start-tls", default=None)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--map-user", multiple=True, help="FIELD=ATTRIBUTE (replaces the user mapping).")
@click.option("--map-group", multiple=True, help="FIELD=ATTRIBUTE (replaces the group mapping).")
@click.option("--near-real-time", "near_real_time_seconds", type=int, default=None)
@click.option(
    "--change-detection", type=click.Choice(["auto", "dirsync", "usn", "syncrepl", "off"]), default=None
)
@click.option("--user-bind-template", default=None)
@click.option("--no-test", is_flag=True, help="Keep the change even if the connection test fails.")
@json_option
@handle_errors
def directory_update(
    directory_id: str, bind_password_file: Path | None, no_test: bool, as_json: bool, **given: Any
) -> None:
    """Change a directory's settings (only those given); every check of a new directory applies,
    and a changed connection is tested first (a failed test changes nothing unless --no-test)."""
    rt = runtime()
    changes = {k: v for k, v in given.items() if v not in (None, ())}
    for kind in ("user", "group"):
        pairs = changes.pop(f"map_{kind}", None)
        if pairs:
            changes.setdefault("mapping", {})[kind] = _mapping(pairs, kind)
    if bind_password_file is not None:
        changes["bind_password"] = _read_secret(bind_password_file, "bind_password", None)
    if not changes:
        raise ConfigError("directory: give at least one setting to change (see --help)")
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, directory_id)
    updated = update_directory_settings(rt, row, changes, test=not no_test)
    _created(updated, as_json)


@directory.command("delete")
@click.argument("directory_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@json_option
@handle_errors
def directory_delete(directory_id: str, yes: bool, as_json: bool) -> None:
    """Delete a directory and its cached users and groups (accounts it linked become local and
    need a password); announces dsync.deleted. Asks first unless --yes."""
    rt = runtime()
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, directory_id)
        counts = repo.directory_metadata(conn, directory_id)
    if not yes:
        if as_json or not sys.stdin.isatty():
            raise ConfigError("yes: deleting needs --yes when nobody can answer the question")
        click.confirm(f"Delete {row['name']} ({directory_id}) and its cached users and groups?", abort=True)
    with rt.engine.begin() as conn:
        delete_directory(conn, directory_id)
    done = {"id": directory_id, "deleted": True, "metadata": counts}
    emit(as_json, done, lambda: click.echo(f"deleted {directory_id}"))


def _print_scim(row: dict[str, Any], as_json: bool) -> None:
    def text() -> None:
        click.echo(f"directory      {row['id']}")
        click.echo(f"endpoint URL   {row['scim_base_url']}")
        click.echo(f"bearer token   {row['scim_token']}")
        click.echo(
            "Paste both into the identity provider's provisioning settings; the token is shown only now."
        )

    emit(as_json, _plain(row), text)


@directory.command("scim-token")
@click.argument("directory_id")
@click.option("--rotate", is_flag=True, required=True, help="Issue a new bearer token.")
@click.option(
    "--grace-minutes",
    type=click.IntRange(0, 7 * 24 * 60),
    default=60,
    show_default=True,
    help="How long the current token keeps working.",
)
@json_option
@handle_errors
def directory_scim_token(directory_id: str, rotate: bool, grace_minutes: int, as_json: bool) -> None:
    """Issue a new SCIM bearer token (shown once); the old one works for the grace period."""
    rt = runtime()
    token = rotate_scim_token(rt, directory_id, timedelta(minutes=grace_minutes))
    data = {
        "directory_id": directory_id,
        "scim_base_url": scim_base_url(rt.settings, directory_id),
        "scim_token": token,
        "previous_token_valid_minutes": grace_minutes,
    }
    emit(as_json, data, lambda: click.echo(token))


@directory.command("scim-log")
@click.argument("directory_id")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@handle_errors
def directory_scim_log(directory_id: str, limit: int, as_json: bool) -> None:
    """What the identity provider sent to a SCIM directory, newest first (passwords redacted)."""
    rt = runtime()
    with rt.engine.connect() as conn:
        repo.get_directory(conn, directory_id)
        rows = requests_log.recent(conn, directory_id, limit)

    def text() -> None:
        for r in rows:
            click.echo(
                f"{r['created_at']} {r['status']} {r['method']:6} {r['path']}  {r['user_agent'] or ''}"
            )
            if r["body"]:
                click.echo(f"    {r['body'][:300]}")

    emit(as_json, rows, text)


def _read_secret(path: Path | None, field: str, default: str | None) -> str:
    if path is None:
        return default or ""
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{field}_file: cannot read {path}: {exc.strerror}") from None


def _azure_secret(settings: dict[str, Any], secret_file: Path | None, certificate_file: Path | None) -> str:
    """The client secret, or the private key of certificate credentials (its certificate goes
    to the settings)."""
    if certificate_file is not None:
        if secret_file is not None:
            raise ConfigError("client_secret: give --client-secret-file or --certificate-file, not both")
        key, certificate = split_pem(_read_secret(certificate_file, "certificate", None))
        settings["certificate_pem"] = certificate
        return key
    secret = _read_secret(secret_file, "client_secret", os.environ.get("ROSTER_CLIENT_SECRET"))
    if not secret:
        raise ConfigError(
            "client_secret: give --client-secret-file FILE, --certificate-file PEM "
            "or set ROSTER_CLIENT_SECRET"
        )
    return secret


@directory.command("list")
@click.option("--org", "org_id", default=None)
@json_option
@handle_errors
def directory_list(org_id: str | None, as_json: bool) -> None:
    """The directories, with their state and last sync."""
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = repo.list_directories(conn, org_id)

    def text() -> None:
        table = make_table(
            "id", "organization", "name", "type", "state", "last sync", ids=("id", "organization")
        )
        for r in rows:
            table.add_row(
                r["id"],
                r["organization_id"],
                r["name"],
                r["type"],
                r["state"],
                iso(r["last_sync_at"]) or "never",
            )
        out.print(table)

    emit(as_json, [_plain(r) for r in rows], text)


@directory.command("show")
@click.argument("directory_id")
@json_option
@handle_errors
def directory_show(directory_id: str, as_json: bool) -> None:
    """One directory: settings (never its secret), counts and recent runs."""
    rt = runtime()
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, directory_id)
        meta = repo.directory_metadata(conn, directory_id)
        runs = repo.list_runs(conn, directory_id, 5)
    data = {**_plain(row), "metadata": meta, "recent_runs": [_plain(r) for r in runs]}

    def text() -> None:
        for key in ("id", "organization_id", "name", "type", "state"):
            click.echo(f"{key:16} {row[key]}")
        for key, value in row["config"].items():
            click.echo(f"{key:16} {value}")
        click.echo(f"{'users':16} {meta['users']['active']} active, {meta['users']['inactive']} inactive")
        click.echo(f"{'groups':16} {meta['groups']}")
        for r in runs:
            click.echo(f"run {r['id']} {r['status']:9} {iso(r['started_at'])} {r['error'] or ''}")

    emit(as_json, data, text)


@directory.command("verify-password")
@click.argument("directory_id")
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@handle_errors
def directory_verify_password(directory_id: str, login: str, password_stdin: bool, as_json: bool) -> None:
    """Check a user's password against the directory (a bind as that user, over TLS)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, err=True)
    outcome = verify_directory_password(runtime(), directory_id, login, password)
    emit(
        as_json,
        {"ok": outcome.ok, "reason": str(outcome.reason)},
        lambda: click.echo(f"{'ok' if outcome.ok else 'refused'}: {outcome.reason}"),
    )
    if not outcome.ok:
        sys.exit(1)


@directory.command("test")
@click.argument("directory_id")
@json_option
@handle_errors
def directory_test(directory_id: str, as_json: bool) -> None:
    """Check the connection: bind (LDAP) or sign in (Entra ID), then read every search path or resource."""
    report = test_directory(runtime(), directory_id)
    data = {
        "ok": report.ok,
        "server": report.server,
        "detail": report.detail,
        "paths": [{"path": p.path, "ok": p.ok, "detail": p.detail} for p in report.paths],
    }

    def text() -> None:
        click.echo(f"{'ok' if report.ok else 'FAILED'}: {report.server}: {report.detail}")
        for p in report.paths:
            click.echo(f"  {'ok ' if p.ok else 'BAD'} {p.path}: {p.detail}")

    emit(as_json, data, text)
    if not report.ok:
        sys.exit(1)
