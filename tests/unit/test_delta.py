"""Incremental reconcile: a delta applied to the cache gives what a full read would give."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roster.domain.delta import Delta, reconcile_delta
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
