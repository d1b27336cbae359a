"""The `roster` command as a user runs it: a subprocess, a real slapd, a SQLite file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from roster.demo.slapd import Slapd, free_port
from tests.support.ldap_tree import Tree

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING) ")
ROSTER = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"


class Cli:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {
            **os.environ,
            "ROSTER_DATABASE_URL": f"sqlite:///{folder / 'roster.db'}",
            "ROSTER_KEY_FILE": str(folder / "roster.key"),
        }
        self.env.pop("ROSTER_BIND_PASSWORD", None)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ROSTER, *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            env={**self.env, **(env or {})},
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> Any:
        """The command's JSON output; it must succeed and log nothing at the default level."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        logged = [line for line in result.stderr.splitlines() if LOG_LINE.match(line)]
        assert not logged, f"roster {args[0]} logged at the default level: {logged[:3]}"
        return json.loads(result.stdout)


def make_directory(
    cli: Cli, slapd: Slapd, tree: Tree, password: str | None = None, *extra: str
) -> tuple[str, str]:
    org = cli.ok("org", "create", "Acme", "--domain", "example.com")["id"]
    (cli.folder / "pw").write_text((password or slapd.admin_password) + "\n")
    d = cli.ok(
        "directory",
        "create",
        "--org",
        org,
        "--type",
        "ldap",
        "--name",
        "Acme LDAP",
        "--url",
        slapd.url,
        "--bind-dn",
        slapd.admin_dn,
        "--bind-password-file",
        str(cli.folder / "pw"),
        "--search-path",
        tree.search_path,
        *extra,
    )
    return org, d["id"]


def _password_file(cli: Cli, password: str) -> object:
    path = cli.folder / "pw-given"
    path.write_text(password + "\n")
    return path


def test_full_cli_flow(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    tree.add_group("eng", [tree.add_user("ada"), tree.add_user("bob")])
    tree.add_user("ghost", mail=None)
    _, d = make_directory(cli, slapd, tree)
    assert cli.ok("directory", "test", d)["ok"] is True
    dry = cli.ok("sync", d, "--dry-run")
    assert dry["counts"]["user_created"] == 2 and {u["email"] for u in dry["new_users"]} == {
        "ada@example.com",
        "bob@example.com",
    }
    assert dry["skipped"][0]["reason"].startswith("no e-mail address")
    run = cli.ok("sync", d)
    assert run["status"] == "succeeded" and run["counts"]["user_created"] == 2
    shown = cli.ok("directory", "show", d)
    assert shown["state"] == "linked" and shown["metadata"]["users"]["active"] == 2
    assert "secret" not in shown and "admin-secret" not in json.dumps(shown)
    assert [x["id"] for x in cli.ok("directory", "list")] == [d]
    text = cli.run("sync", d)
    assert text.returncode == 0 and re.search(
        r"\(incremental\): succeeded in [\d.]+ s; changed: nothing", text.stdout
    )
    full = cli.run("sync", d, "--full")
    assert full.returncode == 0 and re.search(
        r"\(full\): succeeded in [\d.]+ s; changed: skipped 1", full.stdout
    )


def test_password_is_encrypted_at_rest(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    make_directory(cli, slapd, tree)
    assert slapd.admin_password.encode() not in (cli.folder / "roster.db").read_bytes()


def test_bad_search_path_is_refused_and_nothing_is_stored(cli: Cli, slapd: Slapd) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    result = cli.run(
        "directory",
        "create",
        "--org",
        org,
        "--type",
        "ldap",
        "--name",
        "x",
        "--url",
        slapd.url,
        "--bind-dn",
        slapd.admin_dn,
        "--search-path",
        "OU=People, DC=example, CN=Users",
        env={"ROSTER_BIND_PASSWORD": "pw"},
    )
    assert result.returncode == 2
    assert "search_path: search path 'OU=People, DC=example, CN=Users': element 3 'CN=Users'" in result.stderr
    assert cli.ok("directory", "list") == []


def test_missing_password_and_bad_url_name_the_field(cli: Cli, slapd: Slapd) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    base = [
        "directory",
        "create",
        "--org",
        org,
        "--type",
        "ldap",
        "--name",
        "x",
        "--bind-dn",
        "cn=x",
        "--search-path",
        "DC=example, DC=com",
    ]
    no_pw = cli.run(*base, "--url", slapd.url)
    assert no_pw.returncode == 2 and "bind_password:" in no_pw.stderr
    bad_url = cli.run(*base, "--url", "https://example.com", env={"ROSTER_BIND_PASSWORD": "x"})
    assert (
        bad_url.returncode == 2
        and "url: 'https://example.com' must start with ldap://, ldaps:// or ldapi://" in bad_url.stderr
    )
    assert cli.ok("directory", "list") == []


def test_wrong_password_exits_non_zero_with_the_reason(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    org = cli.ok("org", "create", "X")["id"]
    refused = cli.run("directory", "create", "--org", org, "--type", "ldap", "--name", "X",
                      "--url", slapd.url, "--bind-dn", slapd.admin_dn,
                      "--bind-password-file", str(_password_file(cli, "wrong")),
                      "--search-path", tree.search_path, "--json")  # fmt: skip
    assert refused.returncode == 2 and json.loads(refused.stderr)["error"]["field"] == "bind_password"
    assert cli.ok("directory", "list") == []  # tested first: nothing stored
    _, d = make_directory(cli, slapd, tree, "wrong", "--no-test")
    result = cli.run("sync", d, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["reason"] == "invalid_credentials"
    assert "invalid credentials" in result.stderr
    test = cli.run("directory", "test", d)
    assert test.returncode == 1 and "FAILED" in test.stdout


def test_unknown_directory(cli: Cli) -> None:
    result = cli.run("sync", "directory_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert (
        result.returncode == 1
        and "directory 'directory_01ARZ3NDEKTSV4RRFFQ69G5FAV' not found" in result.stderr
    )


def test_serve_answers_with_an_api_key(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    org, d = make_directory(cli, slapd, tree)
    cli.ok("sync", d)
    key = cli.ok("apikey", "create", "--org", org)["secret"]
    port = free_port()
    server = subprocess.Popen(
        [ROSTER, "serve", "--port", str(port)],
        cwd=cli.folder,
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "roster serve did not start"
                time.sleep(0.1)
        users = httpx.get(
            f"{base}/directory_users",
            params={"directory": d},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).json()
        assert [u["email"] for u in users["data"]] == ["ada@example.com"]
    finally:
        server.terminate()
        server.wait(15)
        assert server.stderr is not None
        server.stderr.close()


def test_accounts_groups_sharing_and_login_from_the_cli(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    ada = tree.add_user("ada")
    tree.add_group("eng", [ada])
    org, d = make_directory(cli, slapd, tree)
    boss = cli.ok("account", "create", org, "boss@example.com", "--role", "admin")
    warned = cli.run("settings", "set", org, "--alert-only-selected")
    assert "no one will receive directory alerts" in warned.stdout + warned.stderr
    cli.ok("settings", "set", org, "--alert-recipient", boss["id"])
    cli.ok("sync", d)
    accounts = {a["email"]: a for a in cli.ok("account", "list", org)}
    assert accounts["ada@example.com"]["directory_managed"]
    refused = cli.run("account", "update", accounts["ada@example.com"]["id"], "--name", "X")
    assert refused.returncode == 1 and "name: managed by directory" in refused.stderr
    groups = {g["name"]: g for g in cli.ok("group", "list", org)}
    assert groups["eng"]["source"] == "directory"
    members = cli.ok("group", "members", groups["eng"]["id"], "--effective")
    assert [m["email"] for m in members] == ["ada@example.com"]
    assert cli.run("grant", org, "doc-1", groups["eng"]["id"]).returncode == 0
    assert cli.run("access", org, accounts["ada@example.com"]["id"], "doc-1").returncode == 0
    assert cli.run("access", org, boss["id"], "doc-1").returncode == 1
    outbox = cli.ok("mail", "list", org)
    assert [m["subject"] for m in outbox] == ["Directory Acme LDAP is enabled"]
    disable = cli.run("directory", "disable", d)
    assert disable.returncode == 0 and "nothing changes until one confirms" in disable.stdout
    link = next(m for m in cli.ok("mail", "list", org) if m["subject"].startswith("Confirm"))["body"]
    token = link.split("/actions/")[1].split()[0]
    assert cli.ok("open-link", token)["unlinked"] == 1
    again = cli.run("open-link", token)
    assert again.returncode == 1 and "already used" in again.stderr
    assert cli.run("sync", d).returncode == 1  # disabled: no syncs until enabled
    reset = subprocess.run(
        [ROSTER, "account", "update", boss["id"], "--password-stdin"],
        input="boss-password-1\n",
        capture_output=True,
        text=True,
        cwd=cli.folder,
        env=cli.env,
        check=False,
    )
    assert reset.returncode == 0, reset.stderr
    login = subprocess.run(
        [ROSTER, "login", org, "boss@example.com", "--json"],
        input="boss-password-1\n",
        capture_output=True,
        text=True,
        cwd=cli.folder,
        env=cli.env,
        check=False,
    )
    assert login.returncode == 0 and json.loads(login.stdout)["reason"] == "ok"


def test_webhooks_from_the_cli(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    from tests.support.receiver import receiver

    tree.add_user("ada")
    with receiver() as hook:
        cli.env["ROSTER_WEBHOOK_ALLOW_PRIVATE"] = "true"
        org, d = make_directory(cli, slapd, tree)
        created = cli.ok("webhook", "create", org, hook.url, "--event", "dsync.user.created")
        assert created["secret"].startswith("whsec_")
        cli.ok("sync", d)
        assert cli.run("webhook", "deliver").stdout.strip() == "delivered 1"
        (delivery,) = cli.ok("webhook", "deliveries", created["id"])
        assert delivery["outcome"] == "delivered" and delivery["status_code"] == 200
        again = cli.ok("webhook", "redeliver", created["id"], "--event", delivery["event_id"])
        assert again["outcome"] == "delivered" and len(hook.received) == 2
        del cli.env["ROSTER_WEBHOOK_ALLOW_PRIVATE"]
        refused = cli.run("webhook", "create", org, "http://127.0.0.1:9/x")
        assert refused.returncode == 2 and "loopback, link-local or private" in refused.stderr


def test_an_azure_directory_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    """Create (secret in a file, stored encrypted), test and sync an Entra directory; bad input names
    the field and stores nothing."""
    from roster.demo.graph import GraphEmulator
    from roster.demo.graph_tenant import Tenant
    from tests.support.graph import SECRET, company, register_app

    with GraphEmulator(tmp_path / "graph", Tenant(), page_size=2).running() as graph:
        company(graph.tenant)
        app = register_app(graph)
        org = cli.ok("org", "create", "Contoso")["id"]
        (cli.folder / "secret").write_text(SECRET + "\n")
        base = ["directory", "create", "--org", org, "--type", "azure", "--name", "Entra"]
        base += [
            "--tenant-id",
            graph.tenant.tenant_id,
            "--login-url",
            graph.base,
            "--graph-url",
            graph.graph_url,
        ]
        base += ["--ca-file", str(graph.ca_file)]
        bad = cli.run(*base, "--client-id", "not-a-guid", "--client-secret-file", "secret")
        assert (
            bad.returncode != 0 and "client_id: 'not-a-guid' is not an application (client) id" in bad.stderr
        )
        missing = cli.run(*base, "--client-id", app.client_id)
        assert missing.returncode != 0 and "client_secret: give --client-secret-file" in missing.stderr
        assert cli.ok("directory", "list") == []
        d = cli.ok(*base, "--client-id", app.client_id, "--client-secret-file", "secret")["id"]
        assert SECRET.encode() not in (cli.folder / "roster.db").read_bytes()
        report = cli.ok("directory", "test", d)
        assert report["ok"] is True
        run = cli.ok("sync", d)
        assert run["status"] == "succeeded" and run["counts"]["user_created"] == 5
        assert cli.ok("sync", d)["kind"] == "incremental"


def test_a_scim_directory_from_the_cli_and_roster_serve(cli: Cli) -> None:
    """The endpoint URL and token an IT admin pastes into their provider, then the provider's first
    request to ``roster serve``; rotation keeps the old token for its grace period only."""
    port = free_port()
    env = {"ROSTER_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    org = cli.ok("org", "create", "Acme", "--domain", "example.com")["id"]
    made = cli.run(
        "directory",
        "create",
        "--org",
        org,
        "--type",
        "scim",
        "--provider",
        "okta",
        "--name",
        "Okta",
        "--json",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["scim_base_url"] == f"http://127.0.0.1:{port}/scim/v2/{created['id']}"
    assert created["scim_token"].startswith("roster_scim_") and created["scim_token"] not in (
        cli.folder / "roster.db"
    ).read_bytes().decode("latin-1")
    bad = cli.run("directory", "create", "--org", org, "--type", "scim", "--provider", "nope", "--name", "X")
    assert bad.returncode != 0 and "provider" in bad.stderr.lower()
    server = subprocess.Popen(
        [ROSTER, "serve", "--port", str(port)],
        cwd=cli.folder,
        env={**cli.env, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "roster serve did not start"
                time.sleep(0.1)
        url = created["scim_base_url"] + "/Users"
        body = {"userName": "ada@example.com", "emails": [{"value": "ada@example.com", "primary": True}]}
        made_user = httpx.post(url, json=body, headers={"Authorization": created["scim_token"]}, timeout=30)
        assert made_user.status_code == 201, made_user.text
        rotated = cli.ok("directory", "scim-token", created["id"], "--rotate", "--grace-minutes", "0")
        old = httpx.get(url, headers={"Authorization": f"Bearer {created['scim_token']}"}, timeout=30)
        new = httpx.get(url, headers={"Authorization": f"Bearer {rotated['scim_token']}"}, timeout=30)
        assert (old.status_code, new.status_code) == (401, 200)
        assert [u["userName"] for u in new.json()["Resources"]] == ["ada@example.com"]
        deadline = time.monotonic() + 20  # the server writes its request log in batches, twice a second
        while not (logged := cli.ok("directory", "scim-log", created["id"])) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [(r["method"], r["status"]) for r in logged][-1] == ("POST", 201)
        assert logged[-1]["user_agent"].startswith("python-httpx")
        shown = cli.ok("directory", "show", created["id"])
        assert shown["state"] == "linked" and shown["metadata"]["users"]["active"] == 1
    finally:
        server.terminate()
        server.wait(15)
        assert server.stderr is not None
        server.stderr.close()


def test_sync_no_wait_queues_a_job(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    _, d = make_directory(cli, slapd, tree)
    queued = cli.ok("sync", d, "--no-wait")
    assert queued["status"] == "queued" and queued["job_id"]
    again = cli.ok("sync", d, "--no-wait")
    assert again["job_id"] == queued["job_id"]  # a trigger for an already queued directory coalesces
    missing = cli.run("sync", "directory_nope", "--no-wait")
    assert missing.returncode != 0 and "directory_nope" in missing.stderr


def test_api_keys_are_listed_and_revoked_from_the_cli(cli: Cli) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    made = cli.ok("apikey", "create", "--org", org, "--name", "host app")
    listed = cli.ok("apikey", "list", "--org", org)
    assert [(k["id"], k["name"], k["revoked_at"]) for k in listed] == [(made["id"], "host app", None)]
    assert made["secret"] not in json.dumps(listed)
    assert cli.ok("apikey", "revoke", made["id"])["revoked_at"]
    assert cli.ok("apikey", "list", "--org", org)[0]["revoked_at"]
    missing = cli.run("apikey", "revoke", "key_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_setup_links_and_operators_from_the_cli(cli: Cli) -> None:
    org = cli.ok("org", "create", "Acme")["id"]
    first = cli.ok("setup-link", "create", org, "--hours", "2")
    assert "/setup/" in first["link"]
    bad = cli.run("setup-link", "create", org, "--success-url", "javascript:alert(1)")
    assert bad.returncode == 2 and "success_url" in bad.stderr
    assert cli.ok("setup-link", "revoke", org)["revoked"] == 1
    made = subprocess.run(
        [ROSTER, "operator", "create", "ops@example.com", "--password-stdin", "--json"],
        input="a long operator password\n",
        capture_output=True,
        text=True,
        env=cli.env,
        check=False,
    )
    assert made.returncode == 0 and json.loads(made.stdout)["email"] == "ops@example.com"
    weak = subprocess.run(
        [ROSTER, "operator", "create", "ops2@example.com", "--password-stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        env=cli.env,
        check=False,
    )
    assert weak.returncode == 2 and "password" in weak.stderr
