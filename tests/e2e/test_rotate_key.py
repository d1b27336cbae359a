"""`roster rotate-key`: every stored secret sealed again under a new key, in one transaction,
with a key file and with ROSTER_SECRET_KEY; a failure reseals nothing and keeps the old key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from roster.demo.slapd import Slapd
from roster.store.schema import directories, webhook_endpoints
from tests.e2e.test_cli import Cli, make_directory
from tests.support.ldap_tree import Tree


def sealed(cli: Cli) -> dict[str, str]:
    engine = sa.create_engine(cli.env["ROSTER_DATABASE_URL"])
    with engine.connect() as conn:
        found = {r.id: r.secret for r in conn.execute(sa.select(directories.c.id, directories.c.secret))}
        found |= {
            r.id: r.secret
            for r in conn.execute(sa.select(webhook_endpoints.c.id, webhook_endpoints.c.secret))
        }
    engine.dispose()
    return found


def test_rotating_the_key_file_reseals_everything_and_keeps_syncing(
    cli: Cli, slapd: Slapd, tree: Tree
) -> None:
    tree.add_user("ada")
    org, d = make_directory(cli, slapd, tree)
    cli.env["ROSTER_WEBHOOK_ALLOW_PRIVATE"] = "true"
    cli.ok("webhook", "create", org, "http://127.0.0.1:9/hooks")
    key_file = cli.folder / "roster.key"
    old_key = key_file.read_bytes().strip()
    before = sealed(cli)
    done = cli.ok("rotate-key")
    assert done["total"] >= 2 and done["resealed"]["directories.secret"] == 1
    new_key = key_file.read_bytes().strip()
    assert new_key != old_key and b"\n" not in new_key  # the new key alone
    after = sealed(cli)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
    for value in after.values():
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(value.encode())
        assert Fernet(new_key).decrypt(value.encode())
    assert cli.ok("sync", d)["status"] == "succeeded"  # the bind password opens with the new key


def test_a_secret_that_does_not_open_stops_the_rotation_and_changes_nothing(
    cli: Cli, slapd: Slapd, tree: Tree
) -> None:
    _, d = make_directory(cli, slapd, tree)
    key_file = cli.folder / "roster.key"
    old_key = key_file.read_bytes()
    engine = sa.create_engine(cli.env["ROSTER_DATABASE_URL"])
    with engine.begin() as conn:  # a second directory whose secret was sealed under another key
        row = dict(conn.execute(sa.select(directories).where(directories.c.id == d)).mappings().one())
        foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
        conn.execute(sa.insert(directories).values({**row, "id": d + "b", "name": "B", "secret": foreign}))
    engine.dispose()
    before = sealed(cli)
    failed = cli.run("rotate-key", "--json")
    assert failed.returncode != 0 and "cannot be decrypted" in failed.stderr
    assert sealed(cli) == before and key_file.read_bytes() == old_key
    assert cli.ok("sync", d)["status"] == "succeeded"


def test_rotating_a_key_given_in_the_environment(cli: Cli, slapd: Slapd, tree: Tree) -> None:
    old_key = (cli.folder / "roster.key").read_text().strip()
    cli.env["ROSTER_SECRET_KEY"] = old_key
    _, d = make_directory(cli, slapd, tree)
    new_key = cli.ok("rotate-key")["new_key"]
    assert new_key != old_key
    both = cli.run("sync", d, "--json", env={"ROSTER_SECRET_KEY": f"{new_key},{old_key}"})
    assert both.returncode == 0, both.stderr
    assert cli.run("sync", d, "--json", env={"ROSTER_SECRET_KEY": new_key}).returncode == 0
    stale = cli.run("sync", d, "--json", env={"ROSTER_SECRET_KEY": old_key})
    assert stale.returncode != 0 and "cannot be decrypted" in stale.stderr
