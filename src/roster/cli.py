"""The ``roster`` command. Every command takes ``--json``; failures exit non-zero with a message on stderr."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import click
import sqlalchemy.exc
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from roster.cli_accounts import register as register_accounts
from roster.cli_agent import agent
from roster.cli_console import operator, setup_link
from roster.cli_directories import directory
from roster.cli_ops import runs, status, worker
from roster.cli_plan import plan_lists, plan_text
from roster.cli_secrets import rotate_key
from roster.cli_support import (
    JsonErrors,
    emit,
    err,
    handle_errors,
    json_logs,
    json_logs_option,
    json_option,
    out,
    runtime,
)
from roster.cli_support import plain as _plain
from roster.cli_support import table as make_table
from roster.cli_webhooks import webhook
from roster.connectors.base import ConfigError
from roster.crypto import generate_key_file
from roster.directories import (
    sync_directory,
)
from roster.runtime import Runtime, open_runtime
from roster.settings import get_settings
from roster.store import jobs, repo
from roster.store.db import iso
from roster.sync.pipeline import Phase, RunResult

SERVICES = ("serve", "worker", "agent")  # long-running: they log what they do by default


@click.group(cls=JsonErrors)
@click.version_option(package_name="roster")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log what happens on stderr (-v: INFO, -vv: DEBUG). Commands are quiet by default; "
    "ROSTER_LOG_LEVEL sets the level too.",
)
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Roster: keep your application in step with your customers' directories.

    Every command takes --json: its output, and its errors (on stderr, with the same exit
    codes), become JSON."""
    from roster.logs import configure

    settings = get_settings()
    if verbose:
        level = "DEBUG" if verbose > 1 else "INFO"
    elif "log_level" in settings.model_fields_set:  # ROSTER_LOG_LEVEL given
        level = settings.log_level
    else:
        level = settings.log_level if ctx.invoked_subcommand in SERVICES else "WARNING"
    configure(settings.model_copy(update={"log_level": level}))


@main.command()
@json_option
@handle_errors
def init(as_json: bool) -> None:
    """Create the secret key (if none) and bring the store's schema up to date."""
    settings = get_settings()
    created = False if settings.secret_key else generate_key_file(settings.key_file)
    open_runtime(settings)
    data = {
        "database_url": _safe_url(settings.database_url),
        "key_file": str(settings.key_file),
        "key_created": created,
    }
    where = "ROSTER_SECRET_KEY" if settings.secret_key else str(settings.key_file)
    state = "created in" if created else "kept in"
    emit(
        as_json,
        data,
        lambda: click.echo(f"store ready at {data['database_url']}; secret key {state} {where}"),
    )


def _safe_url(url: str) -> str:
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


@main.group()
def apikey() -> None:
    """API keys (shown once, stored hashed)."""


@apikey.command("create")
@click.option("--org", "org_id", default=None, help="Scope the key to this organization; omit for admin.")
@click.option("--name", default="api key", show_default=True)
@json_option
@handle_errors
def apikey_create(org_id: str | None, name: str, as_json: bool) -> None:
    """Create an API key for an organization (or --admin); the secret is shown once, stored hashed."""
    rt = runtime()
    with rt.engine.begin() as conn:
        row, secret = repo.create_api_key(conn, org_id, name)
    data = {"id": row["id"], "organization_id": org_id, "name": name, "secret": secret}
    emit(as_json, data, lambda: click.echo(f"{secret}\n(id {row['id']}; shown once, store it now)"))


@apikey.command("list")
@click.option("--org", "org_id", default=None, help="Only this organization's keys.")
@json_option
@handle_errors
def apikey_list(org_id: str | None, as_json: bool) -> None:
    """API keys (never their secrets), with when each was last used."""
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = repo.list_api_keys(conn, org_id)
    data = [
        {**{k: r[k] for k in ("id", "organization_id", "name")}, "hint": f"...{r['hint']}"}
        | {k: iso(r[k]) for k in ("created_at", "last_used_at", "revoked_at")}
        for r in rows
    ]

    def text() -> None:
        for d in data:
            state = (
                f"revoked {d['revoked_at']}"
                if d["revoked_at"]
                else f"last used {d['last_used_at'] or 'never'}"
            )
            click.echo(f"{d['id']}  {d['organization_id'] or 'admin'}  {d['name']}  {d['hint']}  {state}")

    emit(as_json, data, text)


@apikey.command("revoke")
@click.argument("key_id")
@json_option
@handle_errors
def apikey_revoke(key_id: str, as_json: bool) -> None:
    """Revoke an API key at once (requests with it get 401 from now on)."""
    rt = runtime()
    with rt.engine.begin() as conn:
        row = repo.revoke_api_key(conn, key_id)
    emit(
        as_json, {"id": key_id, "revoked_at": iso(row["revoked_at"])}, lambda: click.echo(f"{key_id} revoked")
    )


@main.group()
def org() -> None:
    """Organizations (your customers)."""


@org.command("create")
@click.argument("name")
@click.option("--domain", default=None)
@json_option
@handle_errors
def org_create(name: str, domain: str | None, as_json: bool) -> None:
    """Create an organization."""
    rt = runtime()
    with rt.engine.begin() as conn:
        row = repo.create_organization(conn, name, domain)
    emit(as_json, _plain(row), lambda: click.echo(row["id"]))


@org.command("list")
@json_option
@handle_errors
def org_list(as_json: bool) -> None:
    """Every organization."""
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = repo.list_organizations(conn)

    def text() -> None:
        table = make_table("id", "name", "domain")
        for r in rows:
            table.add_row(r["id"], r["name"], r["domain"] or "")
        out.print(table)

    emit(as_json, [_plain(r) for r in rows], text)


@main.command()
@click.argument("directory_id")
@click.option("--dry-run", is_flag=True, help="Show what would change; apply nothing.")
@click.option("--force", is_flag=True, help="Apply even if the deletion guard objects.")
@click.option("--full", is_flag=True, help="Read the whole directory, even when an incremental run could.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="With --dry-run: list every change, not the first 20 of each kind.",
)
@click.option(
    "--no-wait", is_flag=True, help="Queue the run for `roster serve` or `roster worker` and return at once."
)
@json_option
@handle_errors
def sync(
    directory_id: str, dry_run: bool, force: bool, full: bool, show_all: bool, no_wait: bool, as_json: bool
) -> None:
    """Sync a directory now (through its agent, for a directory behind a firewall)."""
    rt = runtime()
    if no_wait:
        with rt.engine.begin() as conn:
            repo.get_directory(conn, directory_id)
            job = jobs.enqueue_sync(
                conn, directory_id, trigger="manual", dry_run=dry_run, force=force, full=full
            )
        emit(as_json, {"job_id": job, "status": "queued"}, lambda: click.echo(f"queued {job}"))
        return
    owner = f"cli:{os.getpid()}"
    # a sync by hand takes the directory like a worker does: never two at once. The lease is as short
    # as a worker's and renewed while the run goes on, so a killed `roster sync` frees it soon.
    lease = timedelta(seconds=rt.settings.job_lease_seconds)
    with rt.engine.begin() as conn:
        jobs.reap(conn)  # runs a killed process left `running` are marked failed first
        jobs.hold_directory(conn, directory_id, owner, lease)
    started = time.perf_counter()
    stop = threading.Event()
    beat = threading.Thread(target=_keep_lease, args=(rt, directory_id, owner, lease, stop), daemon=True)
    beat.start()
    try:
        result = _run_sync(rt, directory_id, dry_run, force, full, as_json, owner)
    finally:
        stop.set()
        beat.join(5)
        with rt.engine.begin() as conn:
            jobs.release_directory(conn, directory_id, owner)
    _report(rt, result, dry_run, as_json, time.perf_counter() - started, show_all)


def _keep_lease(rt: Runtime, directory_id: str, owner: str, lease: timedelta, stop: threading.Event) -> None:
    while not stop.wait(max(0.5, lease.total_seconds() / 3)):
        try:
            with rt.engine.begin() as conn:
                if not jobs.renew_directory(conn, directory_id, owner, lease):
                    return  # lost: the run applies nothing (ingest checks the lease owner)
        except Exception:  # a busy store: try again at the next beat
            continue


def _run_sync(
    rt: Runtime, directory_id: str, dry_run: bool, force: bool, full: bool, as_json: bool, owner: str
) -> RunResult:
    show_progress = not as_json and err.is_terminal
    if show_progress:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed} entries"),
            TimeElapsedColumn(),
            console=err,
        ) as bar:
            task = bar.add_task("connecting", total=None)
            result = sync_directory(
                rt,
                directory_id,
                trigger="cli",
                dry_run=dry_run,
                force=force,
                full=full,
                lease_owner=owner,
                progress=Phase(
                    phase=lambda name: bar.update(task, description=name),
                    read=lambda n: bar.update(task, completed=n),
                ),
            )
    else:
        result = sync_directory(
            rt, directory_id, trigger="cli", dry_run=dry_run, force=force, full=full, lease_owner=owner
        )
    return result


def _report(
    rt: Runtime, result: RunResult, dry_run: bool, as_json: bool, seconds: float, show_all: bool = False
) -> None:
    data: dict[str, Any] = {
        "run_id": result.run_id,
        "kind": result.kind,
        "status": result.status,
        "dry_run": dry_run,
        "counts": result.counts,
        "error": result.error,
        "reason": result.error_reason,
        "seconds": round(seconds, 3),  # the run itself, without this process's start-up
    }
    if dry_run and result.changes is not None:
        data |= plan_lists(rt, result.changes)

    def text() -> None:
        verb = "would change" if dry_run else "changed"
        summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.counts.items() if v)
        click.echo(
            f"run {result.run_id} ({result.kind}): {result.status} in {seconds:.1f} s; "
            f"{verb}: {summary or 'nothing'}"
        )
        if dry_run:
            for line in plan_text(data, None if show_all else 20):
                click.echo(line)

    emit(as_json, data, text)
    if not result.ok:
        err.print(f"[red]sync {result.status}:[/red] {result.error}", highlight=False)
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None, help="Serve HTTPS.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None)
@json_logs_option
@handle_errors
def serve(host: str, port: int, tls_cert: str | None, tls_key: str | None, as_json: bool) -> None:
    """Serve the API (WorkOS-compatible at /, admin at /api/v1, SCIM, agents), over HTTPS with
    --tls-cert and --tls-key (PEM files)."""
    import uvicorn

    json_logs(as_json)

    from roster.api.app import create_app

    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("tls_key: give --tls-cert and --tls-key together")
    uvicorn.run(
        create_app(runtime()),
        host=host,
        port=port,
        log_level="info",
        log_config=None if as_json else uvicorn.config.LOGGING_CONFIG,  # JSON: through the root logger
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )


main.add_command(directory)
main.add_command(agent)
main.add_command(operator)
main.add_command(setup_link)
register_accounts(main)
main.add_command(webhook)
for command in (status, runs, worker, rotate_key):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
