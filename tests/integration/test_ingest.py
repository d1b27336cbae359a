"""The one write path: every kind of batch through ``ingest``, on SQLite and PostgreSQL.

A whole snapshot, a delta with whole records (member lists included) and a delta with
membership operations only must leave the store, the events and the accounts exactly as a
fresh full read of the same directory does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roster.accounts.service import membership_edges
from roster.connectors.memory import MemoryDirectory
from roster.domain.delta import Delta, MemberOp, MemberOpKind
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import (
    accounts,
    app_group_members,
    app_groups,
    directory_groups,
    directory_users,
    events,
    group_group_memberships,
    group_user_memberships,
)
from roster.sync.ingest import Policy, ingest, plan
from roster.sync.pipeline import run_sync
from roster.wire import decode_batch, encode_batch
from tests.conftest import make_runtime
from tests.support.helpers import event_list, full_follow_would_change, last_event_id, new_org


def memory_directory(rt: Runtime, org: str | None = None) -> str:
    """A directory whose batches come from a MemoryDirectory (handed to run_sync or ingest)."""
    org = org or new_org(rt)
    with rt.engine.begin() as conn:
        return str(repo.create_directory(conn, org, "Memory", "memory", {}, None)["id"])


def person(d: MemoryDirectory, ext: str, name: str | None = None, *, active: bool = True) -> None:
    d.put_user(ext, {"mail": [f"{ext}@example.com"], "displayName": [name or ext.title()]}, active=active)


def state(rt: Runtime, directory_id: str) -> dict[str, Any]:
    """The cache, the accounts and the application groups, by source ids and e-mails."""
    u, g, gum, ggm = directory_users, directory_groups, group_user_memberships, group_group_memberships
    a, ag = accounts, app_groups
    with rt.engine.connect() as conn:
        org = repo.get_directory(conn, directory_id)["organization_id"]
        users = {
            r.idp_id: (r.email, r.name, r.state, r.present, r.id)
            for r in conn.execute(sa.select(u).where(u.c.directory_id == directory_id))
        }
        gids = {r.id: r.idp_id for r in conn.execute(sa.select(g).where(g.c.directory_id == directory_id))}
        uids = {v[4]: k for k, v in users.items()}
        q = sa.select(gum.c.group_id, gum.c.user_id).where(gum.c.directory_id == directory_id)
        pairs = {(gids[p], uids[m]) for p, m in conn.execute(q)}
        q = sa.select(ggm.c.parent_group_id, ggm.c.child_group_id).where(ggm.c.directory_id == directory_id)
        pairs |= {(gids[p], gids[c]) for p, c in conn.execute(q)}
        rows = conn.execute(sa.select(a).where(a.c.organization_id == org)).all()
        accts = {
            r.email_lower: (r.disabled, r.disabled_reason, r.directory_user_id is not None) for r in rows
        }
        email = {r.id: r.email_lower for r in rows}
        groups = conn.execute(sa.select(ag).where(ag.c.organization_id == org)).all()
        names = {r.id: r.directory_idp_id for r in groups}
        members = {
            (names[gid], email.get(mid) or names.get(mid))
            for gid, pairs in membership_edges(conn, org).items()
            for mid, _ in pairs
        }
        group_rows = {r.directory_idp_id: (r.name, r.state) for r in groups}
    return {
        "users": {k: v[:4] for k, v in users.items()},
        "groups": set(gids.values()),
        "memberships": pairs,
        "accounts": accts,
        "app_groups": group_rows,
        "app_members": members,
    }


def event_types(rt: Runtime, directory_id: str) -> list[str]:
    with rt.engine.connect() as conn:
        q = sa.select(events.c.event).where(events.c.directory_id == directory_id).order_by(events.c.id)
        return list(conn.execute(q).scalars())


class Twin:
    """A second store (SQLite) that follows the same directory with whole snapshots only."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.rt = make_runtime(f"sqlite:///{tmp_path / f'twin-{name}.db'}", tmp_path)
        self.directory = memory_directory(self.rt)

    def sync(self, source: MemoryDirectory) -> dict[str, Any]:
        result = run_sync(self.rt.engine, self.directory, source, full=True, force=True)
        assert result.ok and result.kind == "full", result
        return state(self.rt, self.directory)

    def close(self) -> None:
        self.rt.engine.dispose()


_VOLATILE = {"id", "directory_id", "organization_id", "created_at", "updated_at", "external_key"}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def events_since(rt: Runtime, mark: str | None) -> list[str]:
    """The events after ``mark``, without the store's own ids and times, in a stable order."""
    return sorted(
        json.dumps([e["event"], _stable(e["data"])], sort_keys=True) for e in event_list(rt, after=mark)
    )


def seed(d: MemoryDirectory) -> None:
    for ext in ("ada", "bob", "cyd", "dee"):
        person(d, ext)
    d.put_group("eng", {"cn": ["Engineering"]})
    d.put_group("all", {"cn": ["Everyone"]})
    d.add_member("eng", "ada")
    d.add_member("eng", "bob")
    d.add_member("all", "eng")
    d.add_member("all", "cyd")


def change(d: MemoryDirectory) -> None:
    person(d, "bob", "Robert")  # a changed record
    person(d, "eve")  # a new one
    d.remove("dee")  # a leaver
    d.remove_member("eng", "ada")
    d.add_member("eng", "eve")
    d.put_group("ops", {"cn": ["Operations"]})
    d.add_member("ops", "ada")
    d.add_member("all", "ops")


@pytest.mark.parametrize("style", ["operations", "lists"])
def test_each_kind_of_delta_equals_a_full_read(rt: Runtime, tmp_path: Path, style: str) -> None:
    source = MemoryDirectory(delta_style=style)  # type: ignore[arg-type]
    seed(source)
    d, twin = memory_directory(rt), Twin(tmp_path, style)
    first = run_sync(rt.engine, d, source)
    assert first.ok and first.kind == "full" and first.counts["user_created"] == 4
    assert state(rt, d) == twin.sync(source)
    change(source)
    mark, twin_mark = last_event_id(rt), last_event_id(twin.rt)
    result = run_sync(rt.engine, d, source)
    assert result.ok and result.kind == "incremental", result
    assert state(rt, d) == twin.sync(source)
    assert events_since(rt, mark) == events_since(twin.rt, twin_mark)  # the same events, whatever the batch
    assert (
        len(events_since(rt, mark)) == 7
    )  # bob updated, eve created, dee deleted, ops created, 3 memberships
    assert full_follow_would_change(rt, d) == full_follow_would_change(twin.rt, twin.directory)
    twin.close()
    assert state(rt, d)["users"]["dee"][2:] == ("inactive", False)  # kept, never deleted
    kinds = event_types(rt, d)
    assert kinds.count("dsync.user.deleted") == 1 and "dsync.group.created" in kinds
    assert kinds[-3:].count("dsync.group.user_added") >= 1


def test_a_whole_snapshot_after_deltas_changes_nothing(rt: Runtime) -> None:
    source = MemoryDirectory()
    seed(source)
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    change(source)
    assert run_sync(rt.engine, d, source).kind == "incremental"
    again = run_sync(rt.engine, d, source, full=True)
    assert again.ok and again.kind == "full" and again.changes is not None and again.changes.is_empty


def test_one_member_operation_touches_one_membership(rt: Runtime) -> None:
    source = MemoryDirectory()
    for i in range(300):
        person(source, f"p{i:03}")
    source.put_group("big", {"cn": ["Big"]})
    for i in range(300):
        source.add_member("big", f"p{i:03}")
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    source.remove_member("big", "p007")
    result = run_sync(rt.engine, d, source)
    assert result.ok and result.changes is not None
    assert result.changes.members_removed == (("big", "p007"),) and not result.changes.members_added
    assert result.counts["member_removed"] == 1 and result.counts["group_updated"] == 0
    source.add_member("big", "p007")
    delta = source.changes(repo_cursor(rt, d))
    assert delta is not None
    with rt.engine.connect() as conn:
        cached, _ = plan(conn, d, delta)
    assert cached.memberships == frozenset()  # the pair is not stored yet: nothing else was read
    source.remove_member("big", "p008")
    delta = source.changes(repo_cursor(rt, d))
    assert delta is not None
    with rt.engine.connect() as conn:
        cached, _ = plan(conn, d, delta)
    assert cached.memberships == {("big", "p008")}  # one membership row, not the group's 299
    assert ("big", "p007") not in state(rt, d)["memberships"]
    assert len(state(rt, d)["memberships"]) == 299


def repo_cursor(rt: Runtime, directory_id: str) -> str:
    with rt.engine.connect() as conn:
        return str(repo.get_directory(conn, directory_id)["cursor"])


def test_parent_lists_for_objects_the_delta_does_not_carry(rt: Runtime) -> None:
    source = MemoryDirectory()
    seed(source)
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    with rt.engine.begin() as conn:  # ada's parents, stated in full: all, no longer eng
        moved = ingest(conn, d, Delta(member_of={"ada": ("all",)}), Policy(guard=None))
    assert moved.counts["member_added"] == 1 and moved.counts["member_removed"] == 1
    members = state(rt, d)["memberships"]
    assert ("all", "ada") in members and ("eng", "ada") not in members
    with rt.engine.begin() as conn:  # stating what is stored already changes nothing
        assert ingest(conn, d, Delta(member_of={"ada": ("all",)}), Policy(guard=None)).changes.is_empty  # type: ignore[union-attr]
    with rt.engine.begin() as conn:
        ingest(conn, d, Delta(removed=frozenset({"dee"})), Policy(guard=None))
    for nobody in ("dee", "ghost"):  # a user who left, an id never seen: no memberships
        with rt.engine.begin() as conn:
            outcome = ingest(conn, d, Delta(member_of={nobody: ("eng",)}), Policy(guard=None))
        assert outcome.ok and outcome.changes is not None and outcome.changes.is_empty


def test_a_group_removed_and_created_again_starts_empty(rt: Runtime, tmp_path: Path) -> None:
    source = MemoryDirectory()
    seed(source)
    d, twin = memory_directory(rt), Twin(tmp_path, "recreated")
    assert run_sync(rt.engine, d, source).ok
    twin.sync(source)
    source.remove("eng")
    source.put_group("eng", {"cn": ["Engineering again"]})
    source.add_member("eng", "cyd")
    assert run_sync(rt.engine, d, source).kind == "incremental"
    assert state(rt, d) == twin.sync(source)
    assert {m for g, m in state(rt, d)["memberships"] if g == "eng"} == {"cyd"}
    twin.close()


def test_ingest_returns_roster_ids_and_takes_batches_from_the_wire(rt: Runtime) -> None:
    """What a SCIM request or an agent upload needs: one call, its own run, the ids it created."""
    source = MemoryDirectory()
    seed(source)
    d = memory_directory(rt)
    batch = decode_batch(encode_batch(source.snapshot()))
    with rt.engine.begin() as conn:
        outcome = ingest(conn, d, batch, Policy(), trigger="upload")
    assert outcome.ok and set(outcome.ids) == {"ada", "bob", "cyd", "dee", "eng", "all"}
    with rt.engine.connect() as conn:
        run = repo.get_run(conn, outcome.run_id)
        row = conn.execute(sa.select(directory_users).where(directory_users.c.idp_id == "ada")).one()
    assert run["trigger"] == "upload" and run["status"] == "succeeded" and run["kind"] == "full"
    assert outcome.ids["ada"] == row.id and row.dn is None and row.ref_key == "ada"
    op = Delta(member_ops=(MemberOp(MemberOpKind.ADD, "eng", "dee"),))
    with rt.engine.begin() as conn:
        added = ingest(conn, d, decode_batch(encode_batch(op)), Policy(guard=None))
    assert added.ok and added.counts["member_added"] == 1 and added.kind == "incremental"
    assert ("eng", "dee") in state(rt, d)["memberships"]
    with rt.engine.connect() as conn:  # a delta without a cursor (SCIM) leaves the stored one as it was
        stored = repo.get_directory(conn, d)["cursor"]
    assert batch.cursor is not None and stored == batch.cursor


def test_a_delete_of_one_user_is_no_mass_deletion_but_a_whole_read_is(rt: Runtime) -> None:
    source = MemoryDirectory()
    person(source, "solo")
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    gone = Delta(removed=frozenset({"solo"}))
    with rt.engine.begin() as conn:  # one SCIM DELETE: the source's policy has no guard
        assert ingest(conn, d, gone, Policy(guard=None)).ok
    assert state(rt, d)["users"]["solo"][2:] == ("inactive", False)
    d2 = memory_directory(rt)
    source2 = MemoryDirectory()
    for ext in ("a1", "a2", "a3"):
        person(source2, ext)
    assert run_sync(rt.engine, d2, source2).ok
    empty = MemoryDirectory()
    held = run_sync(rt.engine, d2, empty)  # a whole snapshot that empties the directory
    assert held.status == "pending_approval" and held.error_reason == "deletion_guard"


def test_a_batch_that_fails_halfway_applies_nothing(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    import roster.sync.ingest as ingest_module

    source = MemoryDirectory()
    seed(source)
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    before = state(rt, d), event_types(rt, d)
    change(source)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the account pass broke")

    monkeypatch.setattr(ingest_module, "follow_directory", explode)
    cursor = repo_cursor(rt, d)
    result = run_sync(rt.engine, d, source)
    assert result.status == "failed" and result.error_reason == "internal"
    assert (state(rt, d), event_types(rt, d), repo_cursor(rt, d)) == (*before, cursor)
    monkeypatch.undo()
    again = run_sync(rt.engine, d, source)  # the cursor did not move: the same delta applies
    assert again.ok and again.kind == "incremental" and again.counts["user_created"] == 1


class Changes:
    """Random changes to a MemoryDirectory, reproducible from a seed. Removed ids come back now
    and then (a restored user, a group created again under its old id)."""

    def __init__(self, source: MemoryDirectory, rnd: random.Random) -> None:
        self.source, self.rnd, self.n = source, rnd, 0
        self.removed: list[str] = []

    def step(self) -> None:
        s, rnd = self.source, self.rnd
        users, groups = sorted(s.users), sorted(s.groups)
        choice = rnd.randrange(9)
        if choice == 8 and self.removed:
            ext = self.removed.pop(rnd.randrange(len(self.removed)))
            if ext.startswith("u"):
                person(s, ext)
            else:
                s.put_group(ext, {"cn": [ext.upper()]})
        elif choice in (0, 8) or not users:
            self.n += 1
            person(s, f"u{self.n}", active=rnd.random() > 0.2)
        elif choice == 1:
            person(s, rnd.choice(users), rnd.choice(["A", "B", "C"]), active=rnd.random() > 0.2)
        elif choice == 2:
            ext = rnd.choice(users + groups)
            s.remove(ext)
            self.removed.append(ext)
        elif choice == 3 or not groups:
            self.n += 1
            s.put_group(f"g{self.n}", {"cn": [f"G{self.n}"], "description": [rnd.choice(["x", "y"])]})
        elif choice in (4, 5):
            s.add_member(rnd.choice(groups), rnd.choice(users + groups))
        elif choice == 6:
            group = rnd.choice(groups)
            if s.members[group]:
                s.remove_member(group, rnd.choice(sorted(s.members[group])))
        else:
            s.put_user(rnd.choice(users), {"displayName": ["No Mail"]})  # becomes unprovisionable


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed_=st.integers(0, 10**6), style=st.sampled_from(["operations", "lists"]))
def test_deltas_in_order_equal_a_full_ingest_of_the_final_directory(
    rt: Runtime, tmp_path: Path, seed_: int, style: str
) -> None:
    rnd = random.Random(seed_)
    source = MemoryDirectory(delta_style=style)  # type: ignore[arg-type]
    changes = Changes(source, rnd)
    for _ in range(12):
        changes.step()
    d, twin = memory_directory(rt), Twin(tmp_path, f"{seed_}-{style}")
    assert run_sync(rt.engine, d, source, force=True).ok
    assert state(rt, d) == twin.sync(source)
    for _ in range(4):
        for _ in range(rnd.randrange(1, 8)):
            changes.step()
        result = run_sync(rt.engine, d, source, force=True)
        assert result.ok and result.kind == "incremental", result
        assert state(rt, d) == twin.sync(source)
    twin.close()


def test_events_name_every_change_once(rt: Runtime) -> None:
    source = MemoryDirectory()
    seed(source)
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.event, events.c.data).where(events.c.directory_id == d)).all()
    created = [json.loads(data)["idp_id"] for kind, data in rows if kind == "dsync.user.created"]
    assert sorted(created) == ["ada", "bob", "cyd", "dee"]
    user = next(json.loads(data) for kind, data in rows if kind == "dsync.user.created")
    assert "distinguished_name" not in user["custom_attributes"]  # the source has no DNs


def test_directory_groups_list_the_directory_members_written_once(rt: Runtime) -> None:
    from roster.accounts.service import add_member, create_local_group, groups_of, members

    source = MemoryDirectory()
    seed(source)  # eng: ada, bob; all: eng (nested), cyd
    d = memory_directory(rt)
    assert run_sync(rt.engine, d, source).ok
    with rt.engine.begin() as conn:
        org = repo.get_directory(conn, d)["organization_id"]
        app = {r.directory_idp_id: r.id for r in conn.execute(sa.select(app_groups))}
        stored = conn.execute(sa.select(sa.func.count()).select_from(app_group_members)).scalar()
        local = create_local_group(conn, org, "Local")["id"]
        add_member(conn, org, local, app["eng"])  # a local group may hold a directory group
        direct = {m["email"] for m in members(conn, org, app["all"], effective=False)}
        effective = {m["email"] for m in members(conn, org, app["all"], effective=True)}
        via_local = {m["email"] for m in members(conn, org, local, effective=True)}
        ada = next(
            m["id"] for m in members(conn, org, app["eng"], effective=False) if m["email"].startswith("ada")
        )
        ada_groups = {g["id"] for g in groups_of(conn, org, ada)}
    assert stored == 0  # each membership is the directory's row, not a second copy
    assert direct == {"cyd@example.com"}
    assert effective == {"ada@example.com", "bob@example.com", "cyd@example.com"}
    assert via_local == {"ada@example.com", "bob@example.com"}
    assert ada_groups == {app["eng"], app["all"], local}
    source.remove_member("eng", "ada")
    assert run_sync(rt.engine, d, source).ok
    with rt.engine.connect() as conn:
        assert {g["id"] for g in groups_of(conn, org, ada)} == set()  # leaving the group is at once
