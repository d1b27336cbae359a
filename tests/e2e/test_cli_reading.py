"""Reading what happened from the command line: a dry run by person with counts and "and N
more", runs listed with a header and whole ids, a run shown as a summary with a paged change list."""

from __future__ import annotations

from roster.demo.slapd import Slapd
from tests.e2e.test_cli import Cli, make_directory
from tests.support.ldap_tree import Tree


def test_a_dry_run_and_the_runs_read_as_an_admin_expects(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    people = [tree.add_user(f"reader{i:02d}") for i in range(25)]
    _, d = make_directory(cli, slapd, tree)
    dry = cli.run("sync", d, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "new users (accounts to provision): 25" in dry.stdout
    assert "reader00@example.com" in dry.stdout and "and 5 more" in dry.stdout
    every = cli.run("sync", d, "--dry-run", "--all").stdout
    assert "reader24@example.com" in every and "more" not in every
    assert len(cli.ok("sync", d, "--dry-run")["new_users"]) == 25
    assert cli.ok("sync", d)["status"] == "succeeded"
    for dn in people[:2]:
        tree.delete(dn)
    gone = cli.run("sync", d, "--dry-run").stdout
    assert "deleted from the directory (accounts to disable): 2" in gone and "reader00@example.com" in gone
    listed = cli.run("runs", "list", d).stdout
    runs = cli.ok("runs", "list", d)
    assert "status" in listed and all(r["id"] in listed for r in runs)  # a header, and whole ids
    synced = next(r for r in runs if r["kind"] == "full")
    shown = cli.run("runs", "show", synced["id"]).stdout
    assert "took" in shown and "user created 25" in shown and "reader" not in shown
    changes = cli.run("runs", "show", synced["id"], "--changes").stdout
    assert "reader00@example.com" in changes
    assert len(cli.ok("runs", "show", synced["id"])["log"]) >= 25
