"""Incremental runs (syncrepl on OpenLDAP, uSNChanged on Active Directory) equal full runs."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from roster.demo.samba import SambaDC
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import directories
from tests.support.ad_tree import AdTree
from tests.support.helpers import (
    event_list,
    full_follow_would_change,
    last_event_id,
    ldap_directory,
    new_org,
    users_by_uid,
)
from tests.support.ldap_tree import Tree
from tests.support.random_ops import Ops


class LdapWriter:
    members_follow_renames = False  # no refint overlay on the test server

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.attic = f"ou=Attic,{tree.base}"
        tree.add(self.attic, {"objectClass": ["organizationalUnit"], "ou": ["Attic"]})

    def add_user(self, name: str) -> str:
        return self.tree.add_user(name)

    def add_group(self, name: str, members: list[str]) -> str:
        return self.tree.add_group(name, members)

    def set_attr(self, dn: str, attr: str, value: str) -> None:
        self.tree.replace(dn, attr, [value])

    def disable(self, dn: str, flag: bool) -> None:
        self.tree.replace(dn, "shadowExpire", ["1"] if flag else ["99999"])

    def rename(self, dn: str, new: str) -> str:
        rdn_attr = dn.split("=", 1)[0]
        parent = dn.split(",", 1)[1]
        self.tree.conn.rename_s(dn, f"{rdn_attr}={new}")
        return f"{rdn_attr}={new},{parent}"

    def move(self, dn: str, inside: bool) -> str:
        return self.tree.move(dn, self.tree.people if inside else self.attic)

    def delete(self, dn: str) -> None:
        self.tree.delete(dn)

    def add_member(self, group: str, member: str) -> None:
        self.tree.add_values(group, "member", [member])

    def remove_member(self, group: str, member: str) -> None:
        self.tree.delete_values(group, "member", [member])


def ldap_dir(rt: Runtime, slapd: Slapd, tree: Tree) -> str:
    paths = [f"OU=People, {tree.search_path}", f"OU=Groups, {tree.search_path}"]
    return ldap_directory(rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, paths)


def cursor_of(rt: Runtime, d: str) -> dict[str, object] | None:
    with rt.engine.connect() as conn:
        text = conn.execute(sa.select(directories.c.cursor).where(directories.c.id == d)).scalar()
    return json.loads(text) if text else None


def test_openldap_incremental_runs_report_each_change(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    w = LdapWriter(tree)
    a, b, c = w.add_user("ada"), w.add_user("bob"), w.add_user("cy")
    team = w.add_group("team", [a, b])
    d = ldap_dir(rt, slapd, tree)
    first = sync_directory(rt, d)
    assert first.ok and first.kind == "full"
    assert (cursor_of(rt, d) or {})["kind"] == "syncrepl"
    ids = {k: v["id"] for k, v in users_by_uid(rt, d).items()}

    mark = last_event_id(rt)
    w.set_attr(a, "title", "Boss")
    w.delete(b)
    w.move(c, inside=False)
    dee = w.add_user("dee")
    w.add_member(team, dee)
    result = sync_directory(rt, d)
    assert result.ok and result.kind == "incremental", result
    assert result.counts["user_updated"] == 1 and result.counts["user_created"] == 1
    assert result.counts["user_removed"] == 2
    events = [
        (e["event"], e["data"].get("id") or e["data"]["user"]["id"]) for e in event_list(rt, after=mark)
    ]
    assert ("dsync.user.updated", ids["ada"]) in events
    assert ("dsync.user.deleted", ids["bob"]) in events and ("dsync.user.deleted", ids["cy"]) in events
    assert sum(1 for kind, _ in events if kind == "dsync.group.user_added") == 1
    assert sum(1 for kind, _ in events if kind == "dsync.group.user_removed") == 1  # bob left the team

    quiet = sync_directory(rt, d)
    assert quiet.ok and quiet.kind == "incremental" and quiet.changes is not None and quiet.changes.is_empty
    full = sync_directory(rt, d, full=True)
    assert full.ok and full.kind == "full" and full.changes is not None and full.changes.is_empty


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_openldap_random_edits_incremental_equals_full(
    rt: Runtime, slapd: Slapd, tree: Tree, seed: int
) -> None:
    ops = Ops(LdapWriter(tree), random.Random(seed))
    for _ in range(6):
        ops.add_user()
    d = ldap_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    for _round in range(5):
        for _ in range(8):
            ops.step()
        result = sync_directory(rt, d, force=True)
        assert result.ok and result.kind == "incremental", (result, ops.log)
    assert {"delete_user", "rename_user", "move_out", "add_member", "remove_member"} <= set(ops.log)
    assert full_follow_would_change(rt, d) == {}, ops.log  # the scoped account passes left nothing
    full = sync_directory(rt, d, full=True, force=True)
    assert full.ok and full.changes is not None
    assert full.changes.is_empty, (full.counts, ops.log)


@pytest.fixture(scope="module")
def slapd_without_sessionlog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """Deletes then reach consumers only through syncrepl's present phase."""
    from tests.conftest import BASE_LDIF

    server = Slapd(tmp_path_factory.mktemp("no-sessionlog"), sessionlog=False)
    server.configure()
    (server.folder / "base.ldif").write_text(BASE_LDIF)
    server.load(server.folder / "base.ldif")
    server.start()
    yield server
    server.stop()


def test_present_phase_deletes(sqlite_rt: Runtime, slapd_without_sessionlog: Slapd) -> None:
    tree = Tree(slapd_without_sessionlog)
    ops = Ops(LdapWriter(tree), random.Random(11))
    for _ in range(6):
        ops.add_user()
    d = ldap_dir(sqlite_rt, slapd_without_sessionlog, tree)
    assert sync_directory(sqlite_rt, d).ok
    for _round in range(4):
        for _ in range(8):
            ops.step()
        assert sync_directory(sqlite_rt, d, force=True).kind == "incremental"
    assert "delete_user" in ops.log or "move_out" in ops.log
    full = sync_directory(sqlite_rt, d, full=True, force=True)
    assert full.ok and full.changes is not None and full.changes.is_empty, (full.counts, ops.log)
    tree.close()


def test_unusable_cursor_falls_back_to_a_full_run(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    w = LdapWriter(tree)
    w.add_user("ada")
    d = ldap_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    with rt.engine.begin() as conn:
        conn.execute(sa.update(directories).where(directories.c.id == d).values(cursor='{"kind": "usn"}'))
    w.add_user("bob")
    result = sync_directory(rt, d)
    assert result.ok and result.kind == "full" and result.counts["fell_back_to_full"] == 1
    assert result.counts["user_created"] == 1
    assert (cursor_of(rt, d) or {})["kind"] == "syncrepl"


def test_a_server_without_syncprov_gets_full_runs(
    rt: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.conftest import BASE_LDIF

    server = Slapd(tmp_path_factory.mktemp("plain-slapd"), syncprov=False)
    server.configure()
    (server.folder / "b.ldif").write_text(
        BASE_LDIF + "\ndn: uid=ada,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: ada\ncn: A\nsn: L\n"
        "mail: ada@example.com\n"
    )
    server.load(server.folder / "b.ldif")
    server.start()
    try:
        d = ldap_directory(
            rt, new_org(rt), server.url, server.admin_dn, server.admin_password, ["DC=example, DC=com"]
        )
        assert sync_directory(rt, d).ok and cursor_of(rt, d) is None
        again = sync_directory(rt, d)
        assert again.ok and again.kind == "full"
    finally:
        server.stop()


class AdWriter:
    members_follow_renames = True  # AD keeps member values pointing at moved objects

    def __init__(self, tree: AdTree) -> None:
        self.tree = tree

    def add_user(self, name: str) -> str:
        return self.tree.add_user(name)

    def add_group(self, name: str, members: list[str]) -> str:
        return self.tree.add_group(name, members)

    def set_attr(self, dn: str, attr: str, value: str) -> None:
        self.tree.replace(dn, attr, [value.encode()])

    def disable(self, dn: str, flag: bool) -> None:
        self.tree.replace(dn, "userAccountControl", [b"514" if flag else b"512"])

    def rename(self, dn: str, new: str) -> str:
        return self.tree.rename(dn, f"CN={new}")

    def move(self, dn: str, inside: bool) -> str:
        return self.tree.rename(dn, dn.split(",", 1)[0], self.tree.base if inside else self.tree.attic)

    def delete(self, dn: str) -> None:
        self.tree.delete(dn)

    def add_member(self, group: str, member: str) -> None:
        self.tree.add_values(group, "member", [member.encode()])

    def remove_member(self, group: str, member: str) -> None:
        self.tree.delete_values(group, "member", [member.encode()])


@pytest.mark.parametrize(("seed", "method"), [(7, "dirsync"), (8, "dirsync"), (9, "usn")])
def test_active_directory_random_edits_incremental_equals_full(
    sqlite_rt: Runtime, samba_dc: SambaDC, ad_tree: AdTree, seed: int, method: str
) -> None:
    rt = sqlite_rt
    ops = Ops(AdWriter(ad_tree), random.Random(seed))
    for _ in range(6):
        ops.add_user()
    d = ldap_directory(
        rt,
        new_org(rt),
        samba_dc.ldaps_url,
        samba_dc.admin_dn,
        samba_dc.admin_password,
        [ad_tree.search_path],
        type="active_directory",
        ca_file=str(samba_dc.ca_file),
        change_detection=method,
    )
    assert sync_directory(rt, d).ok
    assert (cursor_of(rt, d) or {})["kind"] == method
    for _round in range(4):
        for _ in range(8):
            ops.step()
        result = sync_directory(rt, d, force=True)
        assert result.ok and result.kind == "incremental", (result, ops.log)
    assert full_follow_would_change(rt, d) == {}, ops.log  # the scoped account passes left nothing
    full = sync_directory(rt, d, full=True, force=True)
    assert full.ok and full.changes is not None
    assert full.changes.is_empty, (full.counts, ops.log)


def test_active_directory_prefers_dirsync_even_for_an_unprivileged_account(
    sqlite_rt: Runtime, samba_dc: SambaDC, ad_tree: AdTree
) -> None:
    from tests.support.ad_tree import PASSWORD

    reader = ad_tree.add_user("reader")
    ad_tree.add_user("ada")
    d = ldap_directory(
        sqlite_rt,
        new_org(sqlite_rt),
        samba_dc.ldaps_url,
        reader,
        PASSWORD,
        [ad_tree.search_path],
        type="active_directory",
        ca_file=str(samba_dc.ca_file),
    )
    assert sync_directory(sqlite_rt, d).ok
    kind = (cursor_of(sqlite_rt, d) or {})["kind"]
    assert kind in ("dirsync", "usn")  # dirsync where the account may use it, else the USN watermark
    ad_tree.add_user("bob")
    result = sync_directory(sqlite_rt, d)
    assert result.ok and result.kind == "incremental" and result.counts["user_created"] == 1


def test_active_directory_incremental_sees_deletes_and_moves(
    sqlite_rt: Runtime, samba_dc: SambaDC, ad_tree: AdTree
) -> None:
    rt = sqlite_rt
    w = AdWriter(ad_tree)
    a, b, c = w.add_user("ada"), w.add_user("bob"), w.add_user("cy")
    team = w.add_group("team", [a, b])
    d = ldap_directory(
        rt,
        new_org(rt),
        samba_dc.ldaps_url,
        samba_dc.admin_dn,
        samba_dc.admin_password,
        [ad_tree.search_path],
        type="active_directory",
        ca_file=str(samba_dc.ca_file),
    )
    assert sync_directory(rt, d).ok
    w.delete(b)
    w.move(c, inside=False)
    w.set_attr(a, "title", "Boss")
    result = sync_directory(rt, d)
    assert result.ok and result.kind == "incremental"
    assert (result.counts["user_removed"], result.counts["user_updated"]) == (2, 1)
    assert result.counts["member_removed"] == 1
    del team


def test_renaming_an_ou_forces_a_full_run(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    sub = f"ou=Team,{tree.people}"
    tree.add(sub, {"objectClass": ["organizationalUnit"], "ou": ["Team"]})
    tree.add(
        f"uid=ada,{sub}",
        {
            "objectClass": ["inetOrgPerson"],
            "uid": ["ada"],
            "cn": ["Ada"],
            "sn": ["L"],
            "mail": ["ada@example.com"],
        },
    )
    d = ldap_directory(rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    tree.conn.rename_s(sub, "ou=Squad")  # the user moves with it, without being reported as changed
    result = sync_directory(rt, d)
    assert result.ok and result.kind == "full" and result.counts["fell_back_to_full"] == 1
    assert users_by_uid(rt, d)["ada"]["dn"] == f"uid=ada,ou=Squad,{tree.people}"
    assert sync_directory(rt, d).kind == "incremental"


def test_editing_the_search_paths_restarts_from_a_full_run(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    import httpx

    from roster.api.app import create_app
    from roster.store import repo
    from tests.support.servers import serve_app

    tree.add_user("ada")
    tree.add_group("team", [tree.user_dn("ada")])
    org = new_org(rt)
    d = ldap_directory(
        rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [f"OU=People, {tree.search_path}"]
    )
    assert sync_directory(rt, d).ok and cursor_of(rt, d) is not None
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, None, "admin")
    with serve_app(create_app(rt)) as url:
        r = httpx.patch(
            f"{url}/api/v1/directories/{d}",
            headers={"Authorization": f"Bearer {key}"},
            json={"search_paths": [tree.search_path]},
        )
        assert r.status_code == 200, r.text
    assert cursor_of(rt, d) is None
    result = sync_directory(rt, d)
    assert result.kind == "full" and result.counts["group_created"] == 1  # the group's path is new


def test_a_full_run_at_least_every_so_often(
    database_url: str, tmp_path: object, slapd: Slapd, tree: Tree
) -> None:
    from pathlib import Path

    from tests.conftest import make_runtime

    runtime = make_runtime(database_url, Path(str(tmp_path)), full_resync_hours=0)
    tree.add_user("ada")
    d = ldap_dir(runtime, slapd, tree)
    assert sync_directory(runtime, d).ok and cursor_of(runtime, d) is not None
    assert sync_directory(runtime, d).kind == "full"
    runtime.engine.dispose()


def test_active_directory_ou_rename_forces_a_full_run(
    sqlite_rt: Runtime, samba_dc: SambaDC, ad_tree: AdTree
) -> None:
    sub = f"OU=Team,{ad_tree.base}"
    ad_tree.add(sub, {"objectClass": [b"organizationalUnit"]})
    ad_tree.add_user("ada", parent=sub)
    d = ldap_directory(
        sqlite_rt,
        new_org(sqlite_rt),
        samba_dc.ldaps_url,
        samba_dc.admin_dn,
        samba_dc.admin_password,
        [ad_tree.search_path],
        type="active_directory",
        ca_file=str(samba_dc.ca_file),
    )
    assert sync_directory(sqlite_rt, d).ok
    ad_tree.rename(sub, "OU=Squad")
    result = sync_directory(sqlite_rt, d)
    assert result.ok and result.kind == "full" and result.counts["fell_back_to_full"] == 1
    assert users_by_uid(sqlite_rt, d)[ad_tree.account("ada")]["dn"].startswith("CN=ada,OU=Squad,")


def test_scoped_account_passes_hand_over_emails_and_unnest_kept_groups(
    rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    from roster.store.schema import accounts, organizations

    w = LdapWriter(tree)
    ada = w.add_user("ada")
    inner = w.add_group("inner", [ada])
    w.add_group("outer", [inner])
    d = ldap_dir(rt, slapd, tree)
    with rt.engine.begin() as conn:
        org = repo.get_directory(conn, d)["organization_id"]
        conn.execute(
            sa.update(organizations)
            .where(organizations.c.id == org)
            .values(group_removal_policy="keep_inactive")
        )
    assert sync_directory(rt, d).ok
    tree.add_user("bob", mail="ada@example.com")  # ada's e-mail: bob must wait for it
    first = sync_directory(rt, d)
    assert first.ok and first.kind == "incremental" and first.counts.get("account_provisioned") is None
    bob = users_by_uid(rt, d)["bob"]["id"]

    def has_account(user_id: str) -> bool:
        with rt.engine.connect() as conn:
            found = conn.execute(sa.select(accounts.c.id).where(accounts.c.directory_user_id == user_id))
            return found.first() is not None

    assert not has_account(bob)
    w.set_attr(ada, "mail", "ada.new@example.com")  # ada's account gives the e-mail up ...
    w.delete(inner)  # ... and a nested group goes, its application group kept inactive
    handover = sync_directory(rt, d)
    assert handover.ok and handover.kind == "incremental", handover
    assert has_account(bob)  # ... so bob gets an account in the same run
    assert full_follow_would_change(rt, d) == {}  # nothing left for a whole-organization pass
