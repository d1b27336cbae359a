"""The reconciler, with an in-memory model of apply, including property tests."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roster.domain.changes import ChangeSet
from roster.domain.mapping import AttributeMapping, decode_attributes, map_group, map_user
from roster.domain.policy import DeletionGuard
from roster.domain.reconcile import StaleCache, member_digests, reconcile, stale_groups
from roster.domain.records import (
    CachedGroup,
    CachedState,
    CachedUser,
    DirectoryGroup,
    DirectoryUser,
    Snapshot,
)
from roster.domain.snapshot import SnapshotBuilder

_ids = itertools.count()


def apply_in_memory(cached: CachedState, changes: ChangeSet) -> CachedState:
    """What the store does with a change set, on the values reconcile reads."""
    users = dict(cached.users)
    for u in changes.users_created:
        users[u.external_id] = CachedUser(f"u{next(_ids)}", u.external_id, u.content_hash, u.active, True)
    for up in changes.users_updated:
        r = up.record
        users[r.external_id] = CachedUser(
            up.previous.roster_id, r.external_id, r.content_hash, r.active, True
        )
    for c in changes.users_removed:
        users[c.external_id] = CachedUser(c.roster_id, c.external_id, c.content_hash, False, False)
    groups = dict(cached.groups)
    for g in changes.groups_created:
        groups[g.external_id] = CachedGroup(f"g{next(_ids)}", g.external_id, g.content_hash)
    for gu in changes.groups_updated:
        groups[gu.record.external_id] = replace(gu.previous, content_hash=gu.record.content_hash)
    for gd in changes.groups_deleted:
        del groups[gd.external_id]
    changed = {g for g, _ in (*changes.members_added, *changes.members_removed)} | set(changes.member_hashes)
    for ext in changed & set(groups):  # as the store keeps member digests
        groups[ext] = replace(groups[ext], members_hash=changes.member_hashes.get(ext))
    memberships = (set(cached.memberships) - set(changes.members_removed)) | set(changes.members_added)
    return CachedState(users, groups, frozenset(memberships))


def load_partially(cached: CachedState, digests: dict[str, str]) -> CachedState:
    """As the store loads the cache for a full run: only the memberships of groups whose digest differs."""
    stale = stale_groups(digests, cached)
    pairs = frozenset(p for p in cached.memberships if p[0] in stale)
    return replace(cached, memberships=pairs, membership_groups=stale)


def mk_user(ext: str, mail: str | None = None, active: bool = True, title: str = "x") -> DirectoryUser:
    attrs = {"mail": [(mail or f"{ext}@example.com").encode()], "title": [title.encode()]}
    record = map_user(ext, f"uid={ext},dc=x", active, decode_attributes(attrs), AttributeMapping())
    assert isinstance(record, DirectoryUser)
    return record


def mk_group(ext: str, members: tuple[str, ...] = (), desc: str = "d") -> DirectoryGroup:
    decoded = decode_attributes({"cn": [ext.encode()], "description": [desc.encode()]})
    return map_group(
        ext, f"cn={ext},dc=x", decoded, tuple(f"uid={m},dc=x" for m in members), AttributeMapping()
    )


def snap(users: list[DirectoryUser], groups: list[DirectoryGroup]) -> Snapshot:
    b = SnapshotBuilder()
    for u in users:
        b.add_user(u)
    for g in groups:
        b.add_group(g)
    return b.build()


def test_first_sync_creates_everything() -> None:
    s = snap([mk_user("a"), mk_user("b")], [mk_group("g", ("a",))])
    changes = reconcile(s, CachedState())
    assert [u.external_id for u in changes.users_created] == ["a", "b"]
    assert [g.external_id for g in changes.groups_created] == ["g"]
    assert changes.members_added == (("g", "a"),)


def test_update_remove_and_come_back_keep_the_same_id() -> None:
    cached = apply_in_memory(CachedState(), reconcile(snap([mk_user("a"), mk_user("b")], []), CachedState()))
    rid = cached.users["a"].roster_id
    changed = reconcile(snap([mk_user("a", title="boss"), mk_user("b")], []), cached)
    assert [u.previous.roster_id for u in changed.users_updated] == [rid]
    cached = apply_in_memory(cached, changed)
    gone = reconcile(snap([mk_user("b")], []), cached)
    assert [u.roster_id for u in gone.users_removed] == [rid]
    cached = apply_in_memory(cached, gone)
    assert cached.users["a"].present is False  # kept, never deleted
    back = reconcile(snap([mk_user("a", title="boss"), mk_user("b")], []), cached)
    assert [u.previous.roster_id for u in back.users_updated] == [rid]
    assert back.users_created == ()


def test_disabling_is_an_update_that_deactivates() -> None:
    cached = apply_in_memory(CachedState(), reconcile(snap([mk_user("a")], []), CachedState()))
    changes = reconcile(snap([mk_user("a", active=False)], []), cached)
    assert changes.users_updated[0].deactivates
    assert changes.deactivations == 1


def test_nested_groups_become_group_memberships() -> None:
    inner = mk_group("inner", ("a",))
    outer = map_group("outer", "cn=outer,dc=x", {}, ("cn=inner,dc=x",), AttributeMapping())
    changes = reconcile(snap([mk_user("a")], [inner, outer]), CachedState())
    assert set(changes.members_added) == {("inner", "a"), ("outer", "inner")}


# Property tests ---------------------------------------------------------------

EXT = st.sampled_from([f"p{i}" for i in range(12)])
GEXT = st.sampled_from([f"g{i}" for i in range(5)])
users_st = st.dictionaries(EXT, st.tuples(st.booleans(), st.sampled_from(["a", "b", "c"])), max_size=12)
groups_st = st.dictionaries(
    GEXT, st.tuples(st.frozensets(EXT | GEXT, max_size=6), st.sampled_from(["x", "y"])), max_size=5
)


def build(
    users: dict[str, tuple[bool, str]], groups: dict[str, tuple[frozenset[str], str]]
) -> tuple[list[DirectoryUser], list[DirectoryGroup]]:
    us = [mk_user(e, active=a, title=t) for e, (a, t) in users.items()]
    gs = []
    for e, (members, d) in groups.items():
        dns = tuple(f"uid={m},dc=x" if m.startswith("p") else f"cn={m},dc=x" for m in sorted(members))
        gs.append(
            map_group(
                e, f"cn={e},dc=x", decode_attributes({"description": [d.encode()]}), dns, AttributeMapping()
            )
        )
    return us, gs


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(users_st, groups_st), min_size=1, max_size=4))
def test_reconcile_then_apply_then_reconcile_is_empty(history: list[tuple[dict, dict]]) -> None:  # type: ignore[type-arg]
    cached = CachedState()
    for users, groups in history:
        s = snap(*build(users, groups))
        cached = apply_in_memory(cached, reconcile(s, cached))
        assert reconcile(s, cached).is_empty
        # users are never deleted from the cache
        assert set(users) <= set(cached.users)


@settings(max_examples=100, deadline=None)
@given(users_st, groups_st, users_st, groups_st, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_page_order(u1, g1, u2, g2, rnd) -> None:  # type: ignore[no-untyped-def]
    cached = apply_in_memory(CachedState(), reconcile(snap(*build(u1, g1)), CachedState()))
    us, gs = build(u2, g2)
    expected = reconcile(snap(us, gs), cached)
    records: list[DirectoryUser | DirectoryGroup] = [*us, *gs]
    rnd.shuffle(records)
    b = SnapshotBuilder()
    for r in records:
        b.add_user(r) if isinstance(r, DirectoryUser) else b.add_group(r)
    assert reconcile(b.build(), cached) == expected


# The deletion guard -----------------------------------------------------------


def cache_with(n: int) -> CachedState:
    s = snap([mk_user(f"u{i}") for i in range(n)], [])
    return apply_in_memory(CachedState(), reconcile(s, CachedState()))


def test_guard_refuses_an_empty_read() -> None:
    cached = cache_with(3)
    changes = reconcile(snap([], []), cached)
    reason = DeletionGuard().check(changes, cached)
    assert reason is not None and "all 3 active users" in reason


def test_guard_refuses_more_than_the_share_from_the_minimum_count() -> None:
    cached = cache_with(100)
    keep = [mk_user(f"u{i}") for i in range(89)]  # 11 gone: 11% and >= 10
    reason = DeletionGuard().check(reconcile(snap(keep, []), cached), cached)
    assert reason is not None and "11 of 100" in reason


def test_guard_allows_small_changes() -> None:
    cached = cache_with(100)
    ten_gone = [mk_user(f"u{i}") for i in range(90)]  # 10%: not more than 10%
    assert DeletionGuard().check(reconcile(snap(ten_gone, []), cached), cached) is None
    small = cache_with(20)
    five_gone = [mk_user(f"u{i}") for i in range(15)]  # 25% but fewer than 10
    assert DeletionGuard().check(reconcile(snap(five_gone, []), small), small) is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(users_st, groups_st), min_size=1, max_size=5))
def test_loading_only_groups_whose_member_digest_differs_changes_nothing(
    history: list[tuple[dict, dict]],  # type: ignore[type-arg]
) -> None:
    cached = CachedState()
    for users, groups in history:
        s = snap(*build(users, groups))
        digests = member_digests(s.groups, s.memberships)
        everything = reconcile(s, cached)
        partial = load_partially(cached, digests)
        assert partial.membership_groups is not None
        assert reconcile(s, partial, digests) == everything
        cached = apply_in_memory(cached, everything)
        # once applied, every group's digest is known and matches: nothing needs loading
        assert not stale_groups(digests, cached)


def test_member_digest_ignores_order() -> None:
    a = member_digests(["g", "h"], [("g", "u1"), ("g", "u2"), ("h", "u3")])
    b = member_digests(["h", "g"], [("h", "u3"), ("g", "u2"), ("g", "u1")])
    assert a == b and a["g"] != a["h"]
    assert member_digests(["e"], [])["e"] != a["g"]


def test_a_read_that_trusts_fingerprints_the_cache_no_longer_holds_is_refused() -> None:
    cached = apply_in_memory(CachedState(), reconcile(snap([mk_user("a")], []), CachedState()))
    user = replace(cached.users["a"], source_hash="f1")
    cached = replace(cached, users={"a": user})
    as_cached = replace(snap([], []), unchanged={"a": "f1"})
    assert reconcile(as_cached, cached).is_empty
    with pytest.raises(StaleCache):
        reconcile(replace(as_cached, unchanged={"a": "f2"}), cached)
    with pytest.raises(StaleCache):
        reconcile(replace(as_cached, unchanged={"b": "f1"}), cached)
