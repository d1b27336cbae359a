"""Incremental reconcile: a delta applied to the cache gives what a full read would give."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roster.domain.delta import Delta, MemberOp, MemberOpKind, reconcile_delta, with_present
from roster.domain.dn import normalize_dn
from roster.domain.reconcile import reconcile
from roster.domain.records import CachedState, DirectoryGroup, DirectoryUser
from tests.unit.test_reconcile import apply_in_memory, build, groups_st, snap, users_st


def dn_index(cached: CachedState, users: list[DirectoryUser], groups: list[DirectoryGroup]) -> dict[str, str]:
    """What the store knows: DNs of the cached objects still in the directory."""
    present = {e for e, u in cached.users.items() if u.present} | set(cached.groups)
    records: list[DirectoryUser | DirectoryGroup] = [*users, *groups]
    return {normalize_dn(r.dn): r.external_id for r in records if r.external_id in present}


def perfect_delta(
    before: tuple[list[DirectoryUser], list[DirectoryGroup]],
    after: tuple[list[DirectoryUser], list[DirectoryGroup]],
    extra: set[str],
) -> Delta:
    """The delta an ideal change detector reports; ``extra`` are unchanged objects reported anyway."""
    old = {r.external_id: r for r in [*before[0], *before[1]]}
    new = {r.external_id: r for r in [*after[0], *after[1]]}
    changed = {e for e, r in new.items() if old.get(e) != r} | (extra & set(new))
    member_of: dict[str, list[str]] = {e: [] for e in changed}
    for group in after[1]:
        for dn in group.member_refs:
            for e in changed:
                if normalize_dn(new[e].dn) == dn:
                    member_of[e].append(normalize_dn(group.dn))
    return Delta(
        cursor="c",
        users={e: r for e, r in new.items() if e in changed and isinstance(r, DirectoryUser)},
        groups={e: r for e, r in new.items() if e in changed and isinstance(r, DirectoryGroup)},
        member_of={e: tuple(v) for e, v in member_of.items()},
        removed=frozenset(set(old) - set(new)),
    )


@settings(max_examples=300, deadline=None)
@given(
    users_st,
    groups_st,
    users_st,
    groups_st,
    st.sets(st.sampled_from([f"p{i}" for i in range(12)] + [f"g{i}" for i in range(5)])),
)
def test_delta_equals_full_read(u1, g1, u2, g2, extra) -> None:  # type: ignore[no-untyped-def]
    before, after = build(u1, g1), build(u2, g2)
    cached = apply_in_memory(CachedState(), reconcile(snap(*before), CachedState()))
    delta = perfect_delta(before, after, extra)
    changes = reconcile_delta(delta, cached, dn_index(cached, *before))
    cached = apply_in_memory(cached, changes)
    assert reconcile(snap(*after), cached).is_empty


def test_a_delta_that_changes_nothing_is_empty() -> None:
    before = build({"p1": (True, "a")}, {"g1": (frozenset({"p1"}), "x")})
    cached = apply_in_memory(CachedState(), reconcile(snap(*before), CachedState()))
    delta = perfect_delta(before, before, {"p1", "g1"})
    assert reconcile_delta(delta, cached, dn_index(cached, *before)).is_empty


def ops_delta(
    before: tuple[list[DirectoryUser], list[DirectoryGroup]],
    after: tuple[list[DirectoryUser], list[DirectoryGroup]],
    noise: list[tuple[str, str]],
) -> Delta:
    """What Graph or SCIM report: changed records without member lists, and membership operations
    by id; ``noise`` adds an operation and takes it back (the order of operations counts)."""
    old = {r.external_id: r for r in [*before[0], *before[1]]}
    new = {r.external_id: r for r in [*after[0], *after[1]]}
    changed = {e for e, r in new.items() if old.get(e) != r}
    was, now = snap(*before).memberships, snap(*after).memberships
    ops = [MemberOp(MemberOpKind.ADD, g, m) for g, m in sorted(now - was)]
    ops += [MemberOp(MemberOpKind.REMOVE, g, m) for g, m in sorted(was - now)]
    for g, m in noise:
        if (g, m) not in now:
            ops += [MemberOp(MemberOpKind.ADD, g, m), MemberOp(MemberOpKind.REMOVE, g, m)]
    return Delta(
        users={e: r for e, r in new.items() if e in changed and isinstance(r, DirectoryUser)},
        groups={
            e: replace(r, member_refs=None)
            for e, r in new.items()
            if e in changed and isinstance(r, DirectoryGroup)
        },
        removed=frozenset(set(old) - set(new)),
        member_ops=tuple(ops),
    )


@settings(max_examples=300, deadline=None)
@given(
    users_st,
    groups_st,
    users_st,
    groups_st,
    st.lists(
        st.tuples(st.sampled_from([f"g{i}" for i in range(5)]), st.sampled_from([f"p{i}" for i in range(12)]))
    ),
)
def test_membership_operations_equal_a_full_read(u1, g1, u2, g2, noise) -> None:  # type: ignore[no-untyped-def]
    before, after = build(u1, g1), build(u2, g2)
    cached = apply_in_memory(CachedState(), reconcile(snap(*before), CachedState()))
    changes = reconcile_delta(ops_delta(before, after, noise), cached, {})
    cached = apply_in_memory(cached, changes)
    assert reconcile(snap(*after), cached).is_empty


def test_operations_apply_in_order_after_the_lists() -> None:
    users, groups = build({"p1": (True, "a"), "p2": (True, "a")}, {"g1": (frozenset({"p1"}), "x")})
    cached = apply_in_memory(CachedState(), reconcile(snap(users, groups), CachedState()))
    again = MemberOp(MemberOpKind.ADD, "g1", "p1")  # already a member: nothing to do
    gone = MemberOp(MemberOpKind.REMOVE, "g1", "p1")
    back = MemberOp(MemberOpKind.ADD, "g1", "p2")
    assert reconcile_delta(Delta(member_ops=(again,)), cached, {}).is_empty
    changes = reconcile_delta(Delta(member_ops=(back, gone, again)), cached, {})
    assert changes.members_added == (("g1", "p2"),) and not changes.members_removed
    ghost = MemberOp(MemberOpKind.ADD, "g1", "nobody")  # not in the directory: ignored
    assert reconcile_delta(Delta(member_ops=(ghost,)), cached, {}).is_empty


def test_present_lists_what_is_left() -> None:
    delta = with_present(Delta(present=frozenset({"a"})), known=["a", "b"])
    assert delta.removed == {"b"} and delta.present is None
    with pytest.raises(ValueError, match="with_present"):
        reconcile_delta(Delta(present=frozenset()), CachedState(), {})
