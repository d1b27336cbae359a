"""What the SCIM endpoint reads from the directory cache (writes go through the ingest).

A SCIM resource's ``id`` is the cached object's ``idp_id``. A user a provider deleted stays in
the cache as not present (deactivated, never deleted) and is no longer a SCIM resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.store.schema import (
    directory_groups,
    directory_users,
    group_group_memberships,
    group_user_memberships,
)

Row = Mapping[str, Any]
_CHUNK = 500


def _users(directory_id: str) -> sa.Select[Any]:
    u = directory_users
    return sa.select(u).where(u.c.directory_id == directory_id, u.c.present.is_(True))


def _groups(directory_id: str) -> sa.Select[Any]:
    return sa.select(directory_groups).where(directory_groups.c.directory_id == directory_id)


def get_user(conn: Connection, directory_id: str, scim_id: str) -> Row | None:
    row = conn.execute(_users(directory_id).where(directory_users.c.idp_id == scim_id)).mappings().first()
    return dict(row) if row else None


def get_group(conn: Connection, directory_id: str, scim_id: str) -> Row | None:
    row = conn.execute(_groups(directory_id).where(directory_groups.c.idp_id == scim_id)).mappings().first()
    return dict(row) if row else None


def user_named(conn: Connection, directory_id: str, username: str) -> Row | None:
    """The present user whose ``userName`` equals ``username`` ignoring case (SQL's ``lower``
    folds only ASCII: other names are compared here, over the directory's users)."""
    u = directory_users
    q = _users(directory_id)
    if username.isascii():
        q = q.where(sa.func.lower(u.c.username) == username.lower())
    for row in conn.execute(q).mappings():
        if str(row["username"]).casefold() == username.casefold():
            return dict(row)
    return None


def list_users(conn: Connection, directory_id: str, narrow: Mapping[str, Any]) -> list[Row]:
    """Present users in a stable order, narrowed by equality terms an index can use."""
    u = directory_users
    q = _users(directory_id).order_by(u.c.id)
    if isinstance(narrow.get("id"), str):
        q = q.where(u.c.idp_id == narrow["id"])
    name = narrow.get("userName")
    if isinstance(name, str) and name.isascii():
        q = q.where(sa.func.lower(u.c.username) == name.lower())
    return [dict(r) for r in conn.execute(q).mappings()]


def list_groups(conn: Connection, directory_id: str, narrow: Mapping[str, Any]) -> list[Row]:
    g = directory_groups
    q = _groups(directory_id).order_by(g.c.id)
    if isinstance(narrow.get("id"), str):
        q = q.where(g.c.idp_id == narrow["id"])
    if isinstance(narrow.get("displayName"), str):
        q = q.where(g.c.name == narrow["displayName"])
    return [dict(r) for r in conn.execute(q).mappings()]


def page(conn: Connection, directory_id: str, kind: str, offset: int, limit: int) -> tuple[int, list[Row]]:
    """(how many there are, one page of them in the stable order)."""
    table = directory_users if kind == "User" else directory_groups
    base = _users(directory_id) if kind == "User" else _groups(directory_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(base.subquery())).scalar() or 0
    if limit <= 0:
        return int(total), []
    rows = conn.execute(base.order_by(table.c.id).offset(offset).limit(limit)).mappings()
    return int(total), [dict(r) for r in rows]


def members(conn: Connection, group_ids: Iterable[str]) -> dict[str, list[tuple[str, str | None, str]]]:
    """Roster group id -> its direct members as (SCIM id, display name, "User" | "Group")."""
    out: dict[str, list[tuple[str, str | None, str]]] = {}
    ids = list(group_ids)
    gu, gg, u, g = group_user_memberships, group_group_memberships, directory_users, directory_groups
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        users = sa.select(gu.c.group_id, u.c.idp_id, u.c.name, u.c.id).join(u, u.c.id == gu.c.user_id)
        for row in conn.execute(users.where(gu.c.group_id.in_(chunk)).order_by(u.c.id)):
            out.setdefault(row[0], []).append((row[1], row[2], "User"))
        groups = sa.select(gg.c.parent_group_id, g.c.idp_id, g.c.name, g.c.id).join(
            g, g.c.id == gg.c.child_group_id
        )
        for row in conn.execute(groups.where(gg.c.parent_group_id.in_(chunk)).order_by(g.c.id)):
            out.setdefault(row[0], []).append((row[1], row[2], "Group"))
    return out


def user_groups(conn: Connection, user_id: str) -> list[tuple[str, str]]:
    """(SCIM id, display name) of the groups that list a user directly."""
    gu, g = group_user_memberships, directory_groups
    q = sa.select(g.c.idp_id, g.c.name).join(gu, gu.c.group_id == g.c.id).where(gu.c.user_id == user_id)
    return [(r[0], r[1]) for r in conn.execute(q.order_by(g.c.id))]


def known_ids(conn: Connection, directory_id: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are present users or groups of this directory."""
    wanted = list(dict.fromkeys(ids))
    found: set[str] = set()
    u, g = directory_users, directory_groups
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(
            conn.execute(
                sa.select(u.c.idp_id).where(
                    u.c.directory_id == directory_id, u.c.present.is_(True), u.c.idp_id.in_(chunk)
                )
            ).scalars()
        )
        found.update(
            conn.execute(
                sa.select(g.c.idp_id).where(g.c.directory_id == directory_id, g.c.idp_id.in_(chunk))
            ).scalars()
        )
    return found
