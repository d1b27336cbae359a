"""``roster agent``: on the server, enrolment codes, the list of agents and revocation; on the
directory's side of the firewall, ``enroll`` and ``run``."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType

import click

from roster.agent import registry
from roster.cli_support import emit, handle_errors, json_logs, json_logs_option, json_option, out, runtime
from roster.cli_support import table as make_table
from roster.connectors.base import ConfigError
from roster.settings import get_settings


@click.group()
def agent() -> None:
    """The on-prem agent (directories behind a firewall)."""


@agent.command("code")
@click.argument("directory_id")
@click.option("--ttl-minutes", type=click.IntRange(1, 7 * 24 * 60), default=60, show_default=True)
@json_option
@handle_errors
def agent_code(directory_id: str, ttl_minutes: int, as_json: bool) -> None:
    """A one-time enrolment code for an agent of DIRECTORY (connection type agent)."""
    rt = runtime()
    try:
        with rt.engine.begin() as conn:
            code, expires = registry.issue_code(conn, directory_id, timedelta(minutes=ttl_minutes))
    except registry.AgentRefused as exc:
        raise ConfigError(str(exc)) from None
    data = {"directory_id": directory_id, "code": code, "expires_at": expires}
    emit(as_json, data, lambda: click.echo(f"{code}  (one use, until {expires})"))


@agent.command("enroll")
@click.option("--server", required=True, help="Roster's URL, e.g. https://roster.example.com")
@click.option("--code", required=True, help="The one-time code from `roster agent code`.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--url", required=True, help="The directory, e.g. ldaps://dc1.corp.local")
@click.option("--bind-dn", required=True)
@click.option("--bind-password-file", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--ca-file", type=click.Path(exists=True, dir_okay=False), default=None, help="The directory's CA."
)
@click.option("--start-tls", is_flag=True)
@click.option("--insecure-skip-tls-verify", is_flag=True, help="Tests only: do not verify the directory.")
@click.option("--server-ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
@json_option
@handle_errors
def agent_enroll(
    server: str,
    code: str,
    folder: Path,
    url: str,
    bind_dn: str,
    bind_password_file: Path,
    ca_file: str | None,
    start_tls: bool,
    insecure_skip_tls_verify: bool,
    server_ca_file: str | None,
    as_json: bool,
) -> None:
    """Enrol this host's agent: a key made here, a certificate from Roster. The bind password and
    the key never leave this host."""
    from roster.agent.client import enroll
    from roster.agent.state import Ldap

    try:
        password = bind_password_file.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"bind_password_file: cannot read {bind_password_file}: {exc.strerror}") from None
    ldap = Ldap(url.rstrip("/"), bind_dn, ca_file, start_tls, insecure_skip_tls_verify)
    state = enroll(server, code, folder, ldap, password, server_ca_file)
    data = {"agent_id": state.agent_id, "directory_id": state.directory_id, "dir": str(folder)}
    emit(as_json, data, lambda: click.echo(f"enrolled {state.agent_id} for {state.directory_id}"))


@agent.command("run")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), required=True)
@json_logs_option
@handle_errors
def agent_run(folder: Path, as_json: bool) -> None:
    """Run the agent in the foreground until stopped (SIGTERM or Ctrl-C)."""
    json_logs(as_json)
    from roster.agent.client import Agent
    from roster.agent.state import load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Agent(load(folder), get_settings())

    def stop(_signum: int, _frame: FrameType | None) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed: list[BaseException] = []

    def work() -> None:
        try:
            worker.run_forever()
        except BaseException as exc:  # a refusal (revoked, too old): the process ends with it
            failed.append(exc)
            worker.stop.set()

    # the work runs in a thread so that a stop never waits for a long poll to return
    thread = threading.Thread(target=work, name="roster-agent", daemon=True)
    thread.start()
    while thread.is_alive() and not worker.stop.wait(0.5):
        pass
    thread.join(2)
    if failed:
        raise failed[0]


@agent.command("list")
@click.argument("directory_id", required=False)
@json_option
@handle_errors
def agent_list(directory_id: str | None, as_json: bool) -> None:
    """Agents with their status, version, host, last heartbeat and certificate expiry."""
    rt = runtime()
    with rt.engine.connect() as conn:
        rows = registry.listing(conn, directory_id)

    def text() -> None:
        table = make_table(
            "id",
            "directory",
            "status",
            "version",
            "host",
            "last heartbeat",
            "certificate until",
            ids=("id", "directory"),
        )
        for r in rows:
            table.add_row(
                r["id"],
                r["directory_id"],
                r["status"],
                r["version"] or "",
                r["hostname"] or "",
                r["last_seen_at"] or "never",
                r["certificate_expires_at"] or "",
            )
        out.print(table)

    emit(as_json, rows, text)


@agent.command("revoke")
@click.argument("agent_id")
@json_option
@handle_errors
def agent_revoke(agent_id: str, as_json: bool) -> None:
    """End an agent at once: its next request is refused."""
    rt = runtime()
    with rt.engine.begin() as conn:
        registry.revoke(conn, agent_id)
    emit(as_json, {"id": agent_id, "status": "revoked"}, lambda: click.echo(f"revoked {agent_id}"))
