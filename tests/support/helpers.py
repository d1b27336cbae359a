"""Small helpers shared by integration tests."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from roster.directories import DirectorySpec, create_directory
from roster.events import feed
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import directory_groups, directory_users, events, group_user_memberships


def new_org(rt: Runtime, name: str = "Acme", domain: str | None = "example.com") -> str:
    with rt.engine.begin() as conn:
        return str(repo.create_organization(conn, name, domain)["id"])


def ldap_directory(
    rt: Runtime, org_id: str, url: str, bind_dn: str, password: str, paths: list[str], **kwargs: Any
) -> str:
    settings = {"url": url, "bind_dn": bind_dn, "search_paths": tuple(paths), **kwargs}
    spec = DirectorySpec(org_id, "Test LDAP", settings.pop("type", "ldap"), settings, password)
    return str(create_directory(rt, spec)["id"])


def dump(rt: Runtime) -> dict[str, Any]:
    """The whole directory cache, for before/after comparisons."""
    with rt.engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(sa.select(t)))
            for t in (directory_users, directory_groups, group_user_memberships, events)
        }


def users_by_uid(rt: Runtime, directory_id: str) -> dict[str, dict[str, Any]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(directory_users).where(directory_users.c.directory_id == directory_id))
        return {r.username: dict(r._mapping) for r in rows}


def event_list(rt: Runtime, kind: str | None = None, after: str | None = None) -> list[dict[str, Any]]:
    with rt.engine.connect() as conn:
        where = [events.c.event == kind] if kind else []
        rows = feed.read(conn, where, limit=10**9, after=after).events
        return [{"id": r["id"], "event": r["event"], "data": json.loads(r["data"])} for r in rows]


def last_event_id(rt: Runtime) -> str | None:
    with rt.engine.connect() as conn:
        return feed.newest_id(conn, [])


def full_follow_would_change(rt: Runtime, directory_id: str) -> dict[str, int]:
    """What a whole-organization account and group pass would still change (rolled back): empty
    when the passes that ran (possibly limited to what each run touched) left nothing behind."""
    from roster.accounts.follow import follow_directory
    from roster.store.db import utcnow

    with rt.engine.connect() as conn:
        transaction = conn.begin()
        directory = repo.get_directory(conn, directory_id)
        counts = follow_directory(conn, directory["organization_id"], directory_id, "check", utcnow())
        transaction.rollback()
    return counts
