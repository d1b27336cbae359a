"""A new admin's setup mistakes, through `roster directory create` as they would type it: each
is refused with exit code 2, a message naming the field and the rule or the likely cause, the
same as JSON with --json, and nothing is stored."""

from __future__ import annotations

import json

import pytest

from roster.demo.slapd import Slapd, free_port
from tests.e2e.test_cli import Cli
from tests.support.ldap_tree import Tree


def create(cli: Cli, slapd: Slapd, tree: Tree, **given: str) -> tuple[int, dict[str, str]]:
    org = cli.ok("org", "create", "Acme")["id"]
    (cli.folder / "pw").write_text(given.pop("password", slapd.admin_password) + "\n")
    args = {"url": slapd.url, "bind-dn": slapd.admin_dn, "search-path": tree.search_path} | given
    line = ["directory", "create", "--org", org, "--type", "ldap", "--name", "Corp"]
    line += ["--bind-password-file", str(cli.folder / "pw")]
    for name, value in args.items():
        line += [f"--{name}", value]
    done = cli.run(*line, "--json")
    return done.returncode, json.loads(done.stderr)["error"] if done.stderr.strip() else {}


@pytest.mark.parametrize(
    ("mistake", "given", "field", "words"),
    [
        ("a wrong password", {"password": "not the password"}, "bind_password", "invalid credentials"),
        ("a closed port", {"url": "ldap://127.0.0.1:{closed}"}, "url", "refused a connection on port"),
        ("a wrong host", {"url": "ldap://no-such-host.invalid"}, "url", "does not resolve"),
        ("ldaps:// to a plain port", {"url": "ldaps://127.0.0.1:{plain}"}, "url", "does not speak TLS"),
        ("a missing comma", {"search-path": "OU=People DC=example, DC=com"}, "search_path", "comma missing"),
        ("a dot in a DC element", {"search-path": "OU=People, DC=example.com"}, "search_path",
         "DC=example, DC=com"),
        ("a path that is not there", {"search-path": "OU=Nobody, DC=example, DC=com"}, "search_paths",
         "does not exist"),
    ],
)  # fmt: skip
def test_each_setup_mistake_is_refused_and_named(
    cli: Cli, slapd: Slapd, tree: Tree, mistake: str, given: dict[str, str], field: str, words: str
) -> None:
    plain = slapd.url.rsplit(":", 1)[1]
    filled = {k: v.format(closed=free_port(), plain=plain) for k, v in given.items()}
    code, error = create(cli, slapd, tree, **filled)
    assert code == 2, (mistake, error)
    assert error["field"] == field and words in error["message"], (mistake, error)
    assert "nothing was stored" in error["message"] or field == "search_path"
    assert cli.ok("directory", "list") == []


def test_a_plain_ldap_directory_is_stored_with_a_warning_about_logins(
    cli: Cli, slapd: Slapd, tree: Tree
) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    (cli.folder / "pw").write_text(slapd.admin_password + "\n")
    done = cli.run(
        "directory", "create", "--org", org, "--type", "ldap", "--name", "Corp", "--url", slapd.url,
        "--bind-dn", slapd.admin_dn, "--bind-password-file", str(cli.folder / "pw"),
        "--search-path", tree.search_path,
    )  # fmt: skip
    assert done.returncode == 0 and "users cannot sign in" in done.stderr and "StartTLS" in done.stderr
    assert [d["id"] for d in cli.ok("directory", "list")] == [done.stdout.strip()]


def test_a_directory_is_updated_and_deleted_from_the_command_line(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    (cli.folder / "pw").write_text(slapd.admin_password + "\n")
    d = cli.ok(
        "directory", "create", "--org", org, "--type", "ldap", "--name", "Corp", "--url", slapd.url,
        "--bind-dn", slapd.admin_dn, "--bind-password-file", str(cli.folder / "pw"),
        "--search-path", tree.search_path,
    )["id"]  # fmt: skip
    moved = cli.run("directory", "update", d, "--url", f"ldap://127.0.0.1:{free_port()}", "--json")
    assert (
        moved.returncode == 2 and json.loads(moved.stderr)["error"]["field"] == "bind_password"
    )  # needs it again
    refused = cli.run("directory", "update", d, "--url", f"ldap://127.0.0.1:{free_port()}",
                      "--bind-password-file", str(cli.folder / "pw"), "--json")  # fmt: skip
    assert (
        refused.returncode == 2 and "refused a connection" in json.loads(refused.stderr)["error"]["message"]
    )
    assert cli.ok("directory", "show", d)["config"]["url"] == slapd.url  # nothing changed
    renamed = cli.ok("directory", "update", d, "--name", "Corp LDAP", "--search-path", tree.search_path)
    assert renamed["name"] == "Corp LDAP"
    asked = cli.run("directory", "delete", d, "--json")
    assert asked.returncode == 2 and "--yes" in json.loads(asked.stderr)["error"]["message"]
    assert cli.ok("directory", "delete", d, "--yes")["deleted"] is True
    assert cli.ok("directory", "list") == []


def test_alerts_and_the_schedule_are_set_by_e_mail_and_shown(cli: Cli) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    cli.ok("account", "create", org, "it-admin@example.com", "--role", "admin")
    done = cli.ok(
        "settings", "set", org, "--alert-only-selected", "--alert-recipient", "IT-Admin@example.com",
        "--daily-sync-time", "02:30", "--timezone", "Europe/Prague", "--incremental-minutes", "15",
    )  # fmt: skip
    assert done["alert_recipients"] == ["it-admin@example.com"] and done["daily_sync_time"] == "02:30"
    shown = cli.ok("settings", "show", org)
    assert (shown["timezone"], shown["incremental_minutes"]) == ("Europe/Prague", 15)
    for wrong, field in (("--timezone", "timezone"), ("--alert-recipient", "recipients")):
        refused = cli.run("settings", "set", org, wrong, "Nowhere/Atlantis", "--json")
        assert refused.returncode == 2 and json.loads(refused.stderr)["error"]["field"] == field
    assert cli.ok("settings", "show", org) == shown  # nothing changed
