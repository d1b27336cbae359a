"""Reading rows in bulk: chunked ``IN`` lookups and the cached state of a directory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.domain.reconcile import stale_groups
from roster.domain.records import CachedGroup, CachedState, CachedUser
from roster.store.schema import (
    directory_groups,
    directory_users,
    group_group_memberships,
    group_user_memberships,
)

CHUNK = 900  # below SQLite's oldest bound-parameter limit


def one_of(conn: Connection, column: Any, values: Iterable[str]) -> list[sa.ColumnElement[bool]]:
    """Conditions that together select the rows whose ``column`` is one of ``values``: one ``IN``
    per 900 values on SQLite, a single array parameter on PostgreSQL (planned once, whatever
    the number of values; thousands of small ``IN`` queries cost seconds there)."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return [column == sa.any_(sa.bindparam(None, wanted, type_=ARRAY(sa.String)))]
    return [column.in_(wanted[start : start + CHUNK]) for start in range(0, len(wanted), CHUNK)]


_USER_Q = sa.select(
    directory_users.c.id,
    directory_users.c.idp_id,
    directory_users.c.content_hash,
    directory_users.c.state,
    directory_users.c.present,
    directory_users.c.source_hash,
)


def _cached_users(conn: Connection, query: Any) -> dict[str, CachedUser]:
    """External id -> CachedUser for the rows of ``query`` (``_USER_Q`` with conditions)."""
    return {
        ext: CachedUser(rid, ext, digest, state == "active", bool(present), source)
        for rid, ext, digest, state, present, source in conn.execute(query).all()
    }


def _cached_groups(conn: Connection, directory_id: str) -> tuple[dict[str, CachedGroup], dict[str, str]]:
    """Every group of the directory: external id -> CachedGroup, and Roster id -> external id."""
    g = directory_groups
    groups = {
        ext: CachedGroup(rid, ext, digest, members)
        for rid, ext, digest, members in conn.execute(
            sa.select(g.c.id, g.c.idp_id, g.c.content_hash, g.c.members_hash).where(
                g.c.directory_id == directory_id
            )
        ).all()
    }
    return groups, {c.roster_id: ext for ext, c in groups.items()}


def load_rows(conn: Connection, table: sa.Table, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for condition in one_of(conn, table.c.id, ids):
        for row in conn.execute(sa.select(table).where(condition)).mappings():
            out[row["id"]] = dict(row)
    return out


def load_known_ids(conn: Connection, directory_id: str) -> frozenset[str]:
    """External ids of the cached users and groups still in the directory."""
    u, g = directory_users, directory_groups
    users = conn.execute(sa.select(u.c.idp_id).where(u.c.directory_id == directory_id, u.c.present.is_(True)))
    groups = conn.execute(sa.select(g.c.idp_id).where(g.c.directory_id == directory_id))
    return frozenset(users.scalars().all()) | frozenset(groups.scalars().all())


def load_cached_state(
    conn: Connection, directory_id: str, digests: Mapping[str, str] | None = None
) -> CachedState:
    """The cache of one directory. With ``digests`` (the member digests of a fresh read), only
    the memberships of groups whose stored digest differs are loaded."""
    u = directory_users
    users = _cached_users(conn, _USER_Q.where(u.c.directory_id == directory_id))
    user_ext = {c.roster_id: ext for ext, c in users.items()}
    groups, group_ext = _cached_groups(conn, directory_id)
    partial: frozenset[str] | None = None
    if digests is not None:
        partial = stale_groups(digests, CachedState(groups=groups))
        if len(partial) > len(groups) // 2:
            partial = None  # most groups changed: one pass over all memberships is cheaper
    pairs: set[tuple[str, str]] = set()
    gum, ggm = group_user_memberships, group_group_memberships
    user_q = sa.select(gum.c.group_id, gum.c.user_id)
    group_q = sa.select(ggm.c.parent_group_id, ggm.c.child_group_id)
    if partial is None:
        user_rows = conn.execute(user_q.where(gum.c.directory_id == directory_id)).all()
        group_rows = conn.execute(group_q.where(ggm.c.directory_id == directory_id)).all()
    else:
        rids = [groups[ext].roster_id for ext in partial]
        user_rows, group_rows = [], []
        for condition in one_of(conn, gum.c.group_id, rids):
            user_rows += conn.execute(user_q.where(condition)).all()
        for condition in one_of(conn, ggm.c.parent_group_id, rids):
            group_rows += conn.execute(group_q.where(condition)).all()
    for gid, uid in user_rows:
        pairs.add((group_ext[gid], user_ext[uid]))
    for parent, child in group_rows:
        pairs.add((group_ext[parent], group_ext[child]))
    return CachedState(users=users, groups=groups, memberships=frozenset(pairs), membership_groups=partial)


def load_cached_subset(conn: Connection, directory_id: str, touched: Iterable[str]) -> CachedState:
    """What an incremental run needs of the cache: every group (ids and hashes), the users
    ``touched`` names, the memberships that involve a touched object, and the number of
    active users (for the deletion guard). Its cost follows the change, not the directory."""
    u, gum, ggm = directory_users, group_user_memberships, group_group_memberships
    wanted = list(dict.fromkeys(touched))
    groups, group_ext = _cached_groups(conn, directory_id)
    users: dict[str, CachedUser] = {}
    for condition in one_of(conn, u.c.idp_id, wanted):
        users.update(_cached_users(conn, _USER_Q.where(u.c.directory_id == directory_id, condition)))
    user_rids = [c.roster_id for c in users.values()]
    group_rids = [groups[e].roster_id for e in wanted if e in groups]
    pairs: set[tuple[str, str]] = set()
    member = sa.select(gum.c.group_id, u.c.idp_id).join(u, u.c.id == gum.c.user_id)
    for column, rids in ((gum.c.user_id, user_rids), (gum.c.group_id, group_rids)):
        for condition in one_of(conn, column, rids):
            for gid, ext in conn.execute(member.where(condition)):
                pairs.add((group_ext[gid], ext))
    for column in (ggm.c.parent_group_id, ggm.c.child_group_id):
        for condition in one_of(conn, column, group_rids):
            for parent, child in conn.execute(
                sa.select(ggm.c.parent_group_id, ggm.c.child_group_id).where(condition)
            ):
                pairs.add((group_ext[parent], group_ext[child]))
    active = conn.execute(
        sa.select(sa.func.count())
        .select_from(u)
        .where(u.c.directory_id == directory_id, u.c.state == "active", u.c.present.is_(True))
    ).scalar_one()
    return CachedState(users=users, groups=groups, memberships=frozenset(pairs), active_total=int(active))


def resolve_external_ids(conn: Connection, directory_id: str, exts: Iterable[str]) -> dict[str, str]:
    """External id -> Roster id of this directory's users named in ``exts``."""
    u = directory_users
    out: dict[str, str] = {}
    for condition in one_of(conn, u.c.idp_id, exts):
        q = sa.select(u.c.idp_id, u.c.id).where(u.c.directory_id == directory_id, condition)
        out.update((ext, rid) for ext, rid in conn.execute(q))
    return out


def load_source_hashes(conn: Connection, directory_id: str) -> dict[str, str]:
    """External id -> entry fingerprint of the cached users still in the directory."""
    u = directory_users
    q = sa.select(u.c.idp_id, u.c.source_hash).where(
        u.c.directory_id == directory_id, u.c.present.is_(True), u.c.source_hash.is_not(None)
    )
    return {ext: source for ext, source in conn.execute(q).all()}


def load_dn_subset(conn: Connection, directory_id: str, dns: Iterable[str]) -> dict[str, str]:
    """Normalized DN -> external id of the cached users (still in the directory) and groups whose
    DN is one of ``dns``: the members and parents an incremental run resolves."""
    u, g = directory_users, directory_groups
    index: dict[str, str] = {}
    for table, extra in ((u, u.c.present.is_(True)), (g, sa.true())):
        for condition in one_of(conn, table.c.dn_key, dns):
            q = sa.select(table.c.dn_key, table.c.idp_id).where(
                table.c.directory_id == directory_id, condition, extra
            )
            index.update((key, ext) for key, ext in conn.execute(q).all())
    return index
