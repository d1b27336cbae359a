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


def load_cached_subset(
    conn: Connection,
    directory_id: str,
    objects: Iterable[str],
    listed: Iterable[str] = (),
    pairs: Iterable[tuple[str, str]] = (),
) -> CachedState:
    """What a delta needs of the cache: every group (ids and hashes), the users ``objects``
    names, the memberships that involve a ``listed`` object (one whose memberships the delta
    restates), those of ``pairs`` that exist, and the number of active users (for the
    deletion guard). Its cost follows the change, not the directory: a one-member operation
    on a 10,000-member group reads one membership row."""
    u = directory_users
    groups, group_ext = _cached_groups(conn, directory_id)
    users: dict[str, CachedUser] = {}
    for condition in one_of(conn, u.c.idp_id, objects):
        users.update(_cached_users(conn, _USER_Q.where(u.c.directory_id == directory_id, condition)))
    listed = set(listed)
    user_rids = [c.roster_id for e, c in users.items() if e in listed]
    group_rids = [groups[e].roster_id for e in listed if e in groups]
    found = _pairs_involving(conn, user_rids, group_rids, group_ext)
    found |= _existing_pairs(conn, pairs, users, groups, group_ext)
    active = conn.execute(
        sa.select(sa.func.count())
        .select_from(u)
        .where(u.c.directory_id == directory_id, u.c.state == "active", u.c.present.is_(True))
    ).scalar_one()
    return CachedState(users=users, groups=groups, memberships=frozenset(found), active_total=int(active))


_MEMBER_Q = sa.select(group_user_memberships.c.group_id, directory_users.c.idp_id).join(
    directory_users, directory_users.c.id == group_user_memberships.c.user_id
)
_NESTED_Q = sa.select(group_group_memberships.c.parent_group_id, group_group_memberships.c.child_group_id)


def _pairs_involving(
    conn: Connection, user_rids: list[str], group_rids: list[str], group_ext: Mapping[str, str]
) -> set[tuple[str, str]]:
    """Every membership of these users, and every one these groups take part in (either side)."""
    gum, ggm = group_user_memberships, group_group_memberships
    pairs: set[tuple[str, str]] = set()
    for column, rids in ((gum.c.user_id, user_rids), (gum.c.group_id, group_rids)):
        for condition in one_of(conn, column, rids):
            pairs.update((group_ext[gid], ext) for gid, ext in conn.execute(_MEMBER_Q.where(condition)))
    for column in (ggm.c.parent_group_id, ggm.c.child_group_id):
        for condition in one_of(conn, column, group_rids):
            pairs.update((group_ext[p], group_ext[c]) for p, c in conn.execute(_NESTED_Q.where(condition)))
    return pairs


def _existing_pairs(
    conn: Connection,
    wanted: Iterable[tuple[str, str]],
    users: Mapping[str, CachedUser],
    groups: Mapping[str, CachedGroup],
    group_ext: Mapping[str, str],
) -> set[tuple[str, str]]:
    """Which of the ``wanted`` (group, member) pairs are stored (members among ``users`` or groups)."""
    wanted = {(g, m) for g, m in wanted if g in groups and (m in users or m in groups)}
    if not wanted:
        return set()
    gum, ggm = group_user_memberships, group_group_memberships
    parents = [groups[g].roster_id for g, _ in wanted]
    user_rids = {users[m].roster_id for _, m in wanted if m in users}
    group_rids = {groups[m].roster_id for _, m in wanted if m in groups}
    user_ext = {c.roster_id: e for e, c in users.items()}
    found: set[tuple[str, str]] = set()
    for condition in one_of(conn, gum.c.group_id, parents):
        q = sa.select(gum.c.group_id, gum.c.user_id).where(condition)
        for members in one_of(conn, gum.c.user_id, user_rids):
            found.update((group_ext[g], user_ext[m]) for g, m in conn.execute(q.where(members)))
    for condition in one_of(conn, ggm.c.parent_group_id, parents):
        for members in one_of(conn, ggm.c.child_group_id, group_rids):
            q = _NESTED_Q.where(condition, members)
            found.update((group_ext[p], group_ext[c]) for p, c in conn.execute(q))
    return found & wanted


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


def load_ref_subset(conn: Connection, directory_id: str, refs: Iterable[str]) -> dict[str, str]:
    """Reference key (``records.ref_key``) -> external id of the cached users (still in the
    directory) and groups named in ``refs``: the members and parents a delta resolves."""
    u, g = directory_users, directory_groups
    index: dict[str, str] = {}
    for table, extra in ((u, u.c.present.is_(True)), (g, sa.true())):
        for condition in one_of(conn, table.c.ref_key, refs):
            q = sa.select(table.c.ref_key, table.c.idp_id).where(
                table.c.directory_id == directory_id, condition, extra
            )
            index.update((key, ext) for key, ext in conn.execute(q).all())
    return index
