"""The in-memory connector that ships with Roster: a connector like any other, tested itself."""

from __future__ import annotations

import pytest

from roster.connectors.base import ConnectorError, FailureReason
from roster.connectors.memory import MemoryDirectory
from roster.domain.delta import MemberOp, MemberOpKind


def people() -> MemoryDirectory:
    d = MemoryDirectory()
    d.put_user("ada", {"mail": ["ada@example.com"], "displayName": ["Ada"]})
    d.put_user("bob", {"mail": ["bob@example.com"], "givenName": ["Bob"], "sn": ["B"]})
    d.put_user("nomail", {"displayName": ["Nobody"]})
    d.put_group("eng", {"cn": ["Engineering"], "description": ["builders"]})
    d.put_group("all", {"cn": ["Everyone"]})
    d.add_member("eng", "ada")
    d.add_member("all", "eng")
    d.add_member("all", "nomail")
    return d


def test_a_snapshot_maps_like_ldap_and_resolves_members_by_id() -> None:
    snapshot = people().snapshot()
    assert set(snapshot.users) == {"ada", "bob"}
    assert snapshot.users["bob"].name == "Bob B" and snapshot.users["ada"].dn is None
    assert [s.external_id for s in snapshot.skipped] == ["nomail"]
    assert "no e-mail address" in snapshot.skipped[0].reason
    assert snapshot.memberships == {("eng", "ada"), ("all", "eng")}  # a skipped member is not one
    assert snapshot.groups["eng"].description == "builders" and snapshot.cursor


def test_operations_since_a_cursor() -> None:
    d = people()
    cursor = d.snapshot().cursor
    assert cursor is not None
    d.add_member("eng", "bob")
    d.remove_member("eng", "ada")
    d.put_user("ada", {"mail": ["ada@example.org"]})
    delta = d.changes(cursor)
    assert delta is not None and set(delta.users) == {"ada"} and not delta.groups
    assert delta.member_ops == (
        MemberOp(MemberOpKind.ADD, "eng", "bob"),
        MemberOp(MemberOpKind.REMOVE, "eng", "ada"),
    )
    assert delta.member_of == {"ada": ()}  # a changed record states its parents
    later = d.changes(delta.cursor or "")
    assert later is not None and not later.users and not later.member_ops


def test_whole_member_lists_instead_of_operations() -> None:
    d = people()
    d.delta_style = "lists"
    cursor = d.snapshot().cursor or ""
    d.add_member("eng", "bob")
    d.remove("ada")
    delta = d.changes(cursor)
    assert delta is not None and not delta.member_ops
    assert delta.groups["eng"].member_refs == ("bob",) and delta.removed == {"ada"}


def test_cursors_of_other_directories_or_the_future_ask_for_a_full_read() -> None:
    d, other = people(), people()
    cursor = other.snapshot().cursor or ""
    assert d.changes(cursor) is None
    assert d.changes("nonsense") is None
    name = (d.snapshot().cursor or "").rpartition(":")[0]
    assert d.changes(f"{name}:999") is None


def test_failures_and_the_connection_test() -> None:
    d = people()
    assert d.test().ok
    d.fail_with(ConnectorError(FailureReason.UNREACHABLE, "the directory is down"))
    with pytest.raises(ConnectorError, match="down"):
        d.snapshot()
    report = d.test()
    assert not report.ok and "down" in report.detail
    d.fail_with(None)
    assert d.snapshot().users


def test_ids_are_users_or_groups_never_both() -> None:
    d = people()
    with pytest.raises(ValueError, match="external_id: 'ada' is already a user"):
        d.put_group("ada", {"cn": ["x"]})
    with pytest.raises(KeyError):
        d.add_member("eng", "ghost")
