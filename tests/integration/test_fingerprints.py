"""Full runs skip decoding users whose entry is exactly as last read (entry fingerprints)."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from roster.connectors.ldap.connector import LdapConnector
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.domain.mapping import AttributeMapping
from roster.runtime import Runtime
from roster.sources import connector_for
from roster.store import repo
from roster.store.rows import load_source_hashes
from roster.store.schema import directory_users
from tests.support.helpers import dump, last_event_id, ldap_directory, new_org, users_by_uid
from tests.support.ldap_tree import Tree


def _connector(rt: Runtime, d: str) -> LdapConnector:
    with rt.engine.connect() as conn:
        connector = connector_for(repo.get_directory(conn, d), rt.box, rt.settings)
    assert isinstance(connector, LdapConnector)
    return connector


def _previous(rt: Runtime, d: str) -> dict[str, str]:
    with rt.engine.connect() as conn:
        return load_source_hashes(conn, d)


def test_unchanged_entries_are_not_decoded_and_changed_ones_are(
    rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    a, b = tree.add_user("ada"), tree.add_user("bob")
    tree.add_group("eng", [a, b])
    d = ldap_directory(rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d, full=True).ok
    users = users_by_uid(rt, d)
    ada, bob = users["ada"]["idp_id"], users["bob"]["idp_id"]
    previous = _previous(rt, d)
    assert set(previous) == {ada, bob}

    connector = _connector(rt, d)
    quiet = connector.snapshot(None, previous)
    assert dict(quiet.unchanged) == previous and not quiet.users
    assert {m for _, m in quiet.memberships} == {ada, bob}  # still resolved through their DNs
    assert {m for _, m in connector.snapshot().memberships} == {ada, bob}

    tree.replace(a, "title", ["Boss"])
    edited = connector.snapshot(None, previous)
    assert set(edited.users) == {ada} and set(edited.unchanged) == {bob}
    result = sync_directory(rt, d, full=True)
    assert result.ok and result.counts["user_updated"] == 1 and result.counts["user_removed"] == 0
    assert users_by_uid(rt, d)["ada"]["job_title"] == "Boss"
    assert _previous(rt, d)[ada] != previous[ada] and _previous(rt, d)[bob] == previous[bob]

    # Another attribute mapping gives other records: nothing may be taken from the cache.
    remapped = LdapConnector(
        replace(connector.config, mapping=AttributeMapping.from_overrides(user={"job_title": "description"}))
    )
    assert not remapped.snapshot(None, _previous(rt, d)).unchanged


def test_missing_fingerprints_are_filled_in_silently(rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    """After an upgrade the cache has no fingerprints: a full run stores them, with no event."""
    tree.add_user("ada")
    tree.add_user("bob")
    d = ldap_directory(rt, new_org(rt), slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d, full=True).ok
    with rt.engine.begin() as conn:
        conn.execute(sa.update(directory_users).values(source_hash=None))
    mark = last_event_id(rt)
    result = sync_directory(rt, d, full=True)
    assert result.ok and result.changes is not None and result.changes.is_empty
    assert len(result.changes.source_hashes) == 2
    assert last_event_id(rt) == mark  # nothing visible changed: no event
    assert len(_previous(rt, d)) == 2
    before = dump(rt)
    again = sync_directory(rt, d, full=True)
    assert again.ok and again.changes is not None and again.changes.is_empty
    assert not again.changes.source_hashes
    assert dump(rt) == before
