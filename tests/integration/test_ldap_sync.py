"""End-to-end syncs from a real OpenLDAP slapd into SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from roster.demo.slapd import Slapd, free_port
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from tests.conftest import BASE_LDIF
from tests.support.helpers import dump, event_list, last_event_id, ldap_directory, new_org, users_by_uid
from tests.support.ldap_tree import Tree

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openldap"


def setup_dir(rt: Runtime, slapd: Slapd, tree: Tree, **kw: object) -> str:
    return ldap_directory(
        rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path], **kw
    )


def test_first_sync_and_unchanged_resync(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    a = tree.add_user("ada", given="Ada", sn="Lovelace", telephoneNumber="+44 1")
    b = tree.add_user("bob")
    tree.add_user("nomail", mail=None)
    tree.add_user("gone", disabled=True)
    eng = tree.add_group("eng", [a, b], "Engineers")
    tree.add_group("all", [eng, tree.user_dn("nomail")])
    d = setup_dir(rt, slapd, tree)

    result = sync_directory(rt, d)
    assert result.ok, result.error
    assert result.counts["user_created"] == 3
    assert result.counts["skipped"] == 1
    assert result.counts["group_created"] == 2
    users = users_by_uid(rt, d)
    assert set(users) == {"ada", "bob", "gone"}
    assert users["ada"]["name"] == "Ada Lovelace" and users["ada"]["phone"] == "+44 1"
    assert users["gone"]["state"] == "inactive"  # shadowExpire in the past
    kinds = [e["event"] for e in event_list(rt)]
    assert kinds[0] == "dsync.activated"
    assert kinds.count("dsync.user.created") == 3
    assert kinds.count("dsync.group.user_added") == 2  # nested group membership is not a user event
    with rt.engine.connect() as conn:
        run = repo.get_run(conn, result.run_id)
        log = repo.run_log(conn, result.run_id)
        assert repo.get_directory(conn, d)["state"] == "linked"
    assert run["status"] == "succeeded"
    skipped = [e for e in log if e["change"] == "skipped"]
    assert len(skipped) == 1 and "no e-mail address" in skipped[0]["detail"]
    assert {e["change"] for e in log} >= {"user_created", "group_created", "member_added", "skipped"}

    before = dump(rt)
    again = sync_directory(rt, d)
    assert again.ok and again.changes is not None and again.changes.is_empty
    assert dump(rt) == before  # an unchanged re-sync writes nothing


def test_attribute_change_emits_updated_with_previous_attributes(
    rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    dn = tree.add_user("ada", given="Ada", sn="Lovelace")
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    rid = users_by_uid(rt, d)["ada"]["id"]
    mark = last_event_id(rt)
    tree.replace(dn, "displayName", ["Ada King"])
    tree.replace(dn, "mail", ["ada.king@example.com"])
    result = sync_directory(rt, d)
    assert result.ok and result.counts["user_updated"] == 1
    (event,) = event_list(rt, after=mark)
    assert event["event"] == "dsync.user.updated"
    assert event["data"]["id"] == rid
    assert event["data"]["name"] == "Ada King"
    assert event["data"]["previous_attributes"] == {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "raw_attributes": {"displayName": ["Ada Lovelace"], "mail": ["ada@example.com"]},
    }


def test_passwords_are_never_stored_and_password_changes_are_not_updates(
    rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    dn = tree.add_user("ada", userPassword="{SSHA}first-secret-hash")
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    assert "userPassword" not in users_by_uid(rt, d)["ada"]["raw_attributes"]
    assert "secret-hash" not in str(dump(rt))
    tree.replace(dn, "userPassword", ["{SSHA}second-secret-hash"])
    again = sync_directory(rt, d)
    assert again.ok and again.changes is not None and again.changes.is_empty


def test_removed_and_disabled_users_become_inactive_and_come_back(
    rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    a = tree.add_user("ada")
    b = tree.add_user("bob")
    tree.add_user("cy")
    tree.add_group("eng", [a, b])
    attic = f"ou=Attic,{tree.base}"
    tree.add(attic, {"objectClass": ["organizationalUnit"], "ou": ["Attic"]})
    paths = [f"OU=People, {tree.search_path}", f"OU=Groups, {tree.search_path}"]
    d = ldap_directory(rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, paths)
    assert sync_directory(rt, d).ok
    ids = {k: v["id"] for k, v in users_by_uid(rt, d).items()}
    mark = last_event_id(rt)

    moved = tree.move(b, attic)  # out of the search paths: gone from the directory's view
    tree.replace(tree.group_dn("eng"), "member", [a])
    tree.replace(a, "shadowExpire", ["1"])  # disabled in the directory
    result = sync_directory(rt, d)
    assert result.ok, result.error
    users = users_by_uid(rt, d)
    assert users["bob"]["state"] == "inactive" and not users["bob"]["present"]
    assert users["ada"]["state"] == "inactive" and users["ada"]["present"]
    events = event_list(rt, after=mark)
    kinds = [e["event"] for e in events]
    assert kinds == ["dsync.user.updated", "dsync.group.user_removed", "dsync.user.deleted"]
    deleted = events[2]["data"]
    assert deleted["id"] == ids["bob"] and deleted["state"] == "inactive"
    assert events[0]["data"]["previous_attributes"] == {
        "state": "active",
        "raw_attributes": {"shadowExpire": None},
    }

    tree.move(moved, tree.people)  # comes back: same Roster id
    tree.delete_values(a, "shadowExpire", ["1"])
    mark = last_event_id(rt)
    assert sync_directory(rt, d).ok
    users = users_by_uid(rt, d)
    assert users["bob"]["id"] == ids["bob"] and users["bob"]["state"] == "active" and users["bob"]["present"]
    assert users["ada"]["state"] == "active"
    back = {e["data"]["id"]: e["event"] for e in event_list(rt, after=mark)}
    # ada was disabled (still listed): updated; bob had left (deleted): created again, same id
    assert back == {ids["ada"]: "dsync.user.updated", ids["bob"]: "dsync.user.created"}


def test_recreated_entry_is_a_new_user(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    """Identity is the directory's own id (entryUUID), not the DN or the e-mail."""
    dn = tree.add_user("ada")
    tree.add_user("bob")
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    old = users_by_uid(rt, d)["ada"]["id"]
    tree.delete(dn)
    tree.add_user("ada")
    result = sync_directory(rt, d)
    assert result.ok and result.counts["user_created"] == 1 and result.counts["user_removed"] == 1
    with rt.engine.connect() as conn:
        import sqlalchemy as sa

        from roster.store.schema import directory_users as u

        rows = conn.execute(sa.select(u.c.id, u.c.state).where(u.c.username == "ada").order_by(u.c.id)).all()
    assert [tuple(r) for r in rows] == [(old, "inactive"), (rows[1][0], "active")]
    assert rows[1][0] != old


def test_group_membership_and_group_changes(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    a, b = tree.add_user("ada"), tree.add_user("bob")
    g = tree.add_group("eng", [a])
    tree.add_group("ops", [b])
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    mark = last_event_id(rt)
    tree.add_values(g, "member", [b])
    tree.replace(g, "description", ["Engineering"])
    tree.delete(tree.group_dn("ops"))
    result = sync_directory(rt, d)
    assert result.ok
    events = event_list(rt, after=mark)
    kinds = [e["event"] for e in events]
    assert kinds == [
        "dsync.group.updated",
        "dsync.group.user_added",
        "dsync.group.user_removed",
        "dsync.group.deleted",
    ]
    assert events[0]["data"]["previous_attributes"] == {
        "description": None,
        "raw_attributes": {"description": None},
    }
    added = events[1]["data"]
    assert added["user"]["username"] == "bob" and added["group"]["name"] == "eng"


def test_nested_groups_are_stored(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    a = tree.add_user("ada")
    inner = tree.add_group("inner", [a])
    tree.add_group("outer", [inner])
    d = setup_dir(rt, slapd, tree)
    result = sync_directory(rt, d)
    assert result.ok and result.counts["member_added"] == 2
    import sqlalchemy as sa

    from roster.store.schema import directory_groups, group_group_memberships

    with rt.engine.connect() as conn:
        names = dict(conn.execute(sa.select(directory_groups.c.id, directory_groups.c.name)).all())
        pairs = [
            (names[p], names[c])
            for p, c in conn.execute(
                sa.select(group_group_memberships.c.parent_group_id, group_group_memberships.c.child_group_id)
            )
        ]
    assert pairs == [("outer", "inner")]


def test_overlapping_paths_do_not_duplicate(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    people = f"OU=People, {tree.search_path}"
    d = ldap_directory(
        rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [people, tree.search_path]
    )
    result = sync_directory(rt, d)
    assert result.ok and result.counts["user_created"] == 1


def test_wrong_password_fails_and_changes_nothing(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    ada = tree.add_user("ada")
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    tree.replace(ada, "displayName", ["Changed"])  # a change that a failed run must not apply
    with rt.engine.begin() as conn:
        repo.update_directory(conn, d, secret=rt.box.seal("wrong"))
    before = dump(rt)
    result = sync_directory(rt, d)
    assert result.status == "failed" and result.error_reason == "invalid_credentials"
    assert "invalid credentials" in (result.error or "")
    assert dump(rt) == before
    with rt.engine.connect() as conn:
        run = repo.get_run(conn, result.run_id)
        assert repo.get_directory(conn, d)["state"] == "invalid_credentials"
    assert run["status"] == "failed" and run["error_reason"] == "invalid_credentials"
    with rt.engine.begin() as conn:
        repo.update_directory(conn, d, secret=rt.box.seal(slapd.admin_password))
    assert sync_directory(rt, d).counts["user_updated"] == 1
    with rt.engine.connect() as conn:
        assert repo.get_directory(conn, d)["state"] == "linked"


def test_server_dying_mid_search_changes_nothing(
    database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """slapd is stopped while the run is still paging through the directory."""
    from roster.demo.generate import Spec, write_ldif
    from roster.sync.pipeline import Phase
    from tests.conftest import make_runtime

    server = Slapd(tmp_path_factory.mktemp("dying-slapd"))
    server.configure()
    with (server.folder / "d.ldif").open("w") as out:
        write_ldif(Spec(users=1500, groups=5), out)
    server.load(server.folder / "d.ldif")
    server.start()
    runtime = make_runtime(database_url, tmp_path, ldap_page_size=50)
    try:
        d = ldap_directory(
            runtime,
            new_org(runtime),
            server.url,
            server.admin_dn,
            server.admin_password,
            ["DC=example, DC=com"],
        )
        assert sync_directory(runtime, d).ok
        before = dump(runtime)
        stopped: list[int] = []

        def stop_after_first_progress(n: int) -> None:
            if not stopped and n:
                stopped.append(n)
                server.stop()

        result = sync_directory(runtime, d, full=True, progress=Phase(read=stop_after_first_progress))
        assert stopped and stopped[0] < 1500
        assert result.status == "failed" and result.error_reason == "unreachable", result.error
        assert dump(runtime) == before
    finally:
        server.stop()
        runtime.engine.dispose()


def test_unreachable_server_fails_and_changes_nothing(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    before = dump(rt)
    dead = ldap_directory(
        rt, new_org(rt), f"ldap://127.0.0.1:{free_port()}", slapd.admin_dn, "x", [tree.search_path]
    )
    result = sync_directory(rt, dead)
    assert result.status == "failed" and result.error_reason == "unreachable"
    assert dump(rt) == before


def test_missing_search_path_fails(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    d = ldap_directory(
        rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [f"OU=Nowhere, {tree.search_path}"]
    )
    result = sync_directory(rt, d)
    assert result.status == "failed" and result.error_reason == "no_such_path"
    assert "does not exist" in (result.error or "")


def test_mass_deactivation_guard_blocks_then_force_applies(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    dns = [tree.add_user(f"user{i}") for i in range(20)]
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    for dn in dns[:12]:
        tree.delete(dn)
    before = dump(rt)
    blocked = sync_directory(rt, d)
    assert blocked.status == "pending_approval" and blocked.error_reason == "deletion_guard"
    assert "12 of 20" in (blocked.error or "")
    assert dump(rt) == before
    forced = sync_directory(rt, d, force=True)
    assert forced.ok and forced.counts["user_removed"] == 12


def test_empty_read_is_refused(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    a = tree.add_user("ada")
    b = tree.add_user("bob")
    d = setup_dir(rt, slapd, tree)
    assert sync_directory(rt, d).ok
    tree.delete(a)
    tree.delete(b)
    result = sync_directory(rt, d)
    assert result.status == "pending_approval" and "all 2 active users" in (result.error or "")


def test_dry_run_applies_nothing(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    d = setup_dir(rt, slapd, tree)
    before = dump(rt)
    result = sync_directory(rt, d, dry_run=True)
    assert result.ok and result.counts["user_created"] == 1
    assert result.changes is not None and result.changes.users_created[0].username == "ada"
    assert dump(rt) == before


@pytest.mark.parametrize("page_size", [1, 3])
def test_paging_reads_everything(
    database_url: str, tmp_path: Path, slapd: Slapd, tree: Tree, page_size: int
) -> None:
    from tests.conftest import make_runtime

    runtime = make_runtime(database_url, tmp_path, ldap_page_size=page_size)
    for i in range(10):
        tree.add_user(f"p{i}")
    d = setup_dir(runtime, slapd, tree)
    result = sync_directory(runtime, d)
    assert result.ok and result.counts["user_created"] == 10
    runtime.engine.dispose()


def test_members_named_with_escaped_commas_are_found(rt: Runtime, tmp_path: Path) -> None:
    """Active Directory's "Last, First" naming in a directory loaded with slapadd: the entry's DN
    comes back as ``cn=Smith\\2C John``, the group's member value as ``cn=Smith\\, John``. One DN."""
    server = Slapd(tmp_path / "slapd")
    server.configure()
    (tmp_path / "base.ldif").write_text(BASE_LDIF + "\n" + (FIXTURES / "escaped-commas.ldif").read_text())
    server.load(tmp_path / "base.ldif")
    server.start()
    try:
        d = ldap_directory(
            rt,
            new_org(rt),
            server.url,
            server.admin_dn,
            server.admin_password,
            ["OU=People, DC=example, DC=com"],
        )
        result = sync_directory(rt, d)
        assert result.ok and result.counts["member_added"] == 2 and result.counts["ignored_members"] == 0
        with rt.engine.connect() as conn:
            assert repo_members(conn, d, "eng") == {"js@example.com", "aj@example.com"}
    finally:
        server.stop()


def repo_members(conn: object, directory_id: str, group_name: str) -> set[str]:
    import sqlalchemy as sa

    from roster.store.schema import directory_groups, directory_users, group_user_memberships

    u, g, m = directory_users, directory_groups, group_user_memberships
    q = (
        sa.select(u.c.email)
        .join(m, m.c.user_id == u.c.id)
        .join(g, g.c.id == m.c.group_id)
        .where(g.c.directory_id == directory_id, g.c.name == group_name)
    )
    return set(conn.execute(q).scalars())  # type: ignore[attr-defined]
