"""``roster status``, ``roster runs ...`` and ``roster worker``: running Roster day to day."""

from __future__ import annotations

from typing import Any

import click

from roster.cli_support import emit, handle_errors, json_logs, json_logs_option, json_option, out, runtime
from roster.cli_support import plain as _plain
from roster.cli_support import table as make_table
from roster.store import repo
from roster.store.db import utcnow


@click.command()
@json_option
@handle_errors
def status(as_json: bool) -> None:
    """Per directory: state, last check, last run, next scheduled run, pending approvals, webhook backlog."""
    from roster.status import status_rows

    rt = runtime()
    with rt.engine.connect() as conn:
        rows = status_rows(conn, rt.settings.schedule_spread_seconds, utcnow())

    def text() -> None:
        table = make_table(
            "directory",
            "name",
            "state",
            "last check",
            "last run",
            "next run",
            "approvals",
            "backlog",
            ids=("directory",),
        )
        for r in rows:
            check = (
                "never"
                if r["last_check"] is None
                else f"{'ok' if r['last_check_ok'] else 'FAILED'} {r['last_check']}"
            )
            table.add_row(
                r["directory"],
                r["name"],
                r["state"]
                if r["access"] != "unreachable"
                else f"{r['state']}, UNREACHABLE since {r['failing_since']}",
                check,
                f"{r['last_run'] or '-'} {r['last_run_at'] or ''}",
                r["next_scheduled_run"],
                str(r["pending_approvals"]),
                str(r["webhook_backlog"]),
            )
        out.print(table)

    emit(as_json, rows, text)


@click.group()
def runs() -> None:
    """Sync runs: list, show with their log, approve or reject held ones, cancel a running one."""


@runs.command("list")
@click.argument("directory_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
@handle_errors
def runs_list(directory_id: str, limit: int, as_json: bool) -> None:
    """A directory's sync runs, newest first: kind, trigger, status, duration, counts, error."""
    with runtime().engine.connect() as conn:
        repo.get_directory(conn, directory_id)
        rows = [_plain(r) for r in repo.list_runs(conn, directory_id, limit)]

    def text() -> None:
        grid = make_table(
            "run", "kind", "trigger", "status", "started", "took", "changes", "error", ids=("run",)
        )
        for r in rows:
            grid.add_row(
                *(r["id"], r["kind"], r["trigger"], r["status"], r["started_at"]),
                *(_took(r), _counts(r["counts"]), r["error"] or ""),
            )
        out.print(grid)
        click.echo(f"{len(rows)} run(s){' (--limit for more)' if len(rows) == limit else ''}")

    emit(as_json, rows, text)


def _took(run: dict[str, Any]) -> str:
    from datetime import datetime

    if not run["finished_at"]:
        return "-"
    seconds = (
        datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
    ).total_seconds()
    return f"{seconds:.1f} s"


def _counts(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (counts or {}).items() if v) or "none"


@runs.command("show")
@click.argument("run_id")
@click.option("--changes", "show_changes", is_flag=True, help="List the run's changes too.")
@click.option(
    "--page", type=click.IntRange(1), default=1, show_default=True, help="With --changes: which 100."
)
@json_option
@handle_errors
def runs_show(run_id: str, show_changes: bool, page: int, as_json: bool) -> None:
    """One sync run: a summary (kind, trigger, status, duration, counts, error); --changes adds its
    change list, 100 a page; --json gives the run and every change."""
    with runtime().engine.connect() as conn:
        run = _plain(repo.get_run(conn, run_id))
        log = [_plain(e) for e in repo.run_log(conn, run_id, 1_000_000 if as_json else page * 100 + 1)]

    def text() -> None:
        for label, value in (
            ("run", run["id"]), ("directory", run["directory_id"]), ("kind", run["kind"]),
            ("trigger", run["trigger"]), ("status", run["status"]), ("started", run["started_at"]),
            ("took", _took(run)), ("changes", _counts(run["counts"])), ("error", run["error"] or "-"),
        ):  # fmt: skip
            click.echo(f"{label:10} {value}")
        if not show_changes:
            click.echo("(--changes lists the changes)" if log else "")
            return
        shown = log[(page - 1) * 100 : page * 100]
        for e in shown:
            click.echo(f"  {e['change']:20} {_who(e)}")
        if len(log) > page * 100:
            click.echo(f"  more: --changes --page {page + 1}")

    emit(as_json, {**run, "log": log}, text)


def _who(entry: dict[str, Any]) -> str:
    """A change's object as a person reads it: the e-mail or name in its detail, else its ids."""
    import json

    try:
        detail = json.loads(entry["detail"] or "{}")
    except ValueError:
        detail = {}
    named = detail.get("email") or detail.get("name") if isinstance(detail, dict) else None
    ids = entry["object_id"] or entry["external_id"] or ""
    return f"{named} ({ids})" if named else str(ids)


@runs.command("approve")
@click.argument("run_id")
@json_option
@handle_errors
def runs_approve(run_id: str, as_json: bool) -> None:
    """Apply exactly what a held run would do (re-planned if the directory changed since)."""
    from roster.sync.approvals import approve

    with runtime().engine.begin() as conn:
        job_id = approve(conn, run_id)
    text = f"approved; queued as {job_id} (a worker or roster serve runs it)"
    emit(as_json, {"run_id": run_id, "decision": "approved", "job_id": job_id}, lambda: click.echo(text))


@runs.command("reject")
@click.argument("run_id")
@json_option
@handle_errors
def runs_reject(run_id: str, as_json: bool) -> None:
    """Drop a held run: nothing of it is applied."""
    from roster.sync.approvals import reject

    with runtime().engine.begin() as conn:
        reject(conn, run_id)
    emit(as_json, {"run_id": run_id, "decision": "rejected"}, lambda: click.echo("rejected"))


@runs.command("cancel")
@click.argument("run_id")
@json_option
@handle_errors
def runs_cancel(run_id: str, as_json: bool) -> None:
    """Mark a running run failed and release its directory's lease at once (a run left
    `running` by a killed process, or one to stop now). A process still running it applies
    nothing. Runs whose process died are also reaped on their own once their lease expires."""
    from roster.store import jobs

    with runtime().engine.begin() as conn:
        run = _plain(jobs.cancel_run(conn, run_id))
    emit(as_json, run, lambda: click.echo(f"cancelled {run_id}; directory {run['directory_id']} is free"))


@click.command()
@json_logs_option
@handle_errors
def worker(as_json: bool) -> None:
    """Run sync jobs from the database (any number of these may share one PostgreSQL)."""
    json_logs(as_json)
    import threading

    from roster.events.webhooks import Deliverer
    from roster.sync.schedule import Schedules
    from roster.sync.scheduler import AccessChecks, run_ticks
    from roster.sync.worker import Worker

    rt = runtime()
    w = Worker(rt)
    stop = threading.Event()
    # Webhook delivery is leased per endpoint and schedules coalesce, so every worker may run them.
    threading.Thread(target=Deliverer(rt).run_forever, daemon=True).start()
    # schedules tick on their own: an access check waiting on an unreachable server never delays them
    threading.Thread(target=run_ticks, args=(stop, [AccessChecks(rt).tick]), daemon=True).start()
    threading.Thread(target=run_ticks, args=(stop, [Schedules(rt).tick]), daemon=True).start()
    click.echo(f"worker {w.name} started", err=True)
    w.run_forever()
