"""Write a ChangeSet: directory cache, sync log and events outbox, in the caller's transaction.

The caller owns the transaction (``engine.begin()``), so a failure anywhere
leaves the store exactly as it was. Statements are bulk (executemany), never one
ORM round trip per object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.domain.changes import ChangeKind, ChangeSet
from roster.domain.pairs import PairRuns
from roster.domain.records import CachedState, DirectoryGroup, DirectoryUser, ref_key
from roster.events.payloads import (
    GROUP_EVENT_FIELDS,
    USER_EVENT_FIELDS,
    group_payload,
    previous_attributes,
    raw_changes,
    user_payload,
)
from roster.ids import new_ids
from roster.store.bulk import insert_many, insert_rows
from roster.store.rows import resolve_external_ids
from roster.store.schema import (
    directory_groups,
    directory_users,
    group_group_memberships,
    group_user_memberships,
)
from roster.store.writer import Target, Touched, Writer, by_group, dumps, note_skipped

CHUNK = 5000  # objects or memberships written per step


def _user_columns(record: DirectoryUser) -> dict[str, Any]:
    return {
        "idp_id": record.external_id,
        "dn": record.dn,
        "ref_key": ref_key(record.external_id, record.dn),
        "email": record.email,
        "email_lower": record.email.lower() if record.email else None,
        "name": record.name,
        "first_name": record.first_name,
        "last_name": record.last_name,
        "username": record.username,
        "job_title": record.job_title,
        "phone": record.phone,
        "state": "active" if record.active else "inactive",
        "present": True,
        "raw_attributes": record.raw_json,
        "custom_attributes": record.custom_json,
        "content_hash": record.content_hash,
        "source_hash": record.source_hash,
    }


def _group_columns(record: DirectoryGroup) -> dict[str, Any]:
    return {
        "idp_id": record.external_id,
        "dn": record.dn,
        "ref_key": ref_key(record.external_id, record.dn),
        "name": record.name,
        "description": record.description,
        "raw_attributes": record.raw_json,
        "content_hash": record.content_hash,
    }


def apply_changes(
    conn: Connection,
    target: Target,
    changes: ChangeSet,
    cached: CachedState,
    now: datetime,
    *,
    activation: str | None = None,
) -> Touched:
    """Apply ``changes``; ``activation`` (a ``dsync.activated`` payload) becomes the first event."""
    w = Writer(conn, target, now)
    if activation is not None:
        w.event("dsync.activated", activation)
    user_ids, group_ids = _known_ids(conn, target, changes, cached)
    _create_groups(w, changes, group_ids)
    _update_groups(w, changes)
    created = _create_users(w, changes, user_ids)
    _update_users(w, changes)
    _apply_memberships(w, changes, user_ids, group_ids)
    _write_member_hashes(conn, changes, group_ids)
    _remove_users(w, changes)
    _delete_groups(w, changes)
    if changes.source_hashes:  # no visible change: no event, no log entry
        u = directory_users
        conn.execute(
            sa.update(u).where(u.c.id == sa.bindparam("b_id")),
            [{"b_id": rid, "source_hash": fp} for rid, fp in sorted(changes.source_hashes.items())],
        )
    note_skipped(w, changes)
    w.flush()
    return Touched(
        users=frozenset(created)
        | {c.previous.roster_id for c in changes.users_updated}
        | {c.roster_id for c in changes.users_removed},
        groups=frozenset(group_ids[r.external_id] for r in changes.groups_created)
        | {c.previous.roster_id for c in changes.groups_updated}
        | {c.roster_id for c in changes.groups_deleted},
        user_ids=user_ids,
        group_ids=group_ids,
    )


def _known_ids(
    conn: Connection, target: Target, changes: ChangeSet, cached: CachedState
) -> tuple[dict[str, str], dict[str, str]]:
    """External id -> Roster id of the users and groups the change set may name."""
    user_ids = {ext: c.roster_id for ext, c in cached.users.items()}
    group_ids = {ext: c.roster_id for ext, c in cached.groups.items()}
    if cached.active_total is not None:  # a partial cache: look up the other members named
        named = {m for pairs in (changes.members_added, changes.members_removed) for _, m in pairs}
        created = {r.external_id for r in changes.users_created}
        unknown = named - user_ids.keys() - group_ids.keys() - created
        user_ids.update(resolve_external_ids(conn, target.directory_id, unknown))
    return user_ids, group_ids


def _base(w: Writer) -> dict[str, Any]:
    return {"directory_id": w.target.directory_id, "organization_id": w.target.organization_id}


def _create_groups(w: Writer, changes: ChangeSet, group_ids: dict[str, str]) -> None:
    if not changes.groups_created:
        return
    rows = []
    new = new_ids("directory_group", len(changes.groups_created))
    for rid, record in zip(new, changes.groups_created, strict=True):
        group_ids[record.external_id] = rid
        row = {
            "id": rid,
            **_base(w),
            **_group_columns(record),
            "members_hash": changes.member_hashes.get(record.external_id),
            "created_at": w.now,
            "updated_at": w.now,
        }
        rows.append(row)
        w.groups[rid] = row
        w.event("dsync.group.created", w.group_json(rid))
        w.note(ChangeKind.GROUP_CREATED, "group", rid, record.external_id, {"name": record.name})
    insert_many(w.conn, directory_groups, rows)


def _update_groups(w: Writer, changes: ChangeSet) -> None:
    if not changes.groups_updated:
        return
    w.need_groups({c.previous.roster_id for c in changes.groups_updated})
    updates = [
        (c.previous.roster_id, c.record.external_id, _group_columns(c.record), False)
        for c in changes.groups_updated
    ]
    _write_updates(w, directory_groups, w.groups, updates, _GROUP_UPDATES)


def _create_users(w: Writer, changes: ChangeSet, user_ids: dict[str, str]) -> list[str]:
    """New users, a chunk at a time (a spooled read gives them a chunk at a time): only their
    event JSON stays in memory (membership events name it), not their rows. Returns their ids."""
    created = changes.users_created
    new = new_ids("directory_user", len(created))
    for start in range(0, len(created), CHUNK):
        rows = []
        for rid, user in zip(new[start : start + CHUNK], created[start : start + CHUNK], strict=True):
            user_ids[user.external_id] = rid
            row = {"id": rid, **_base(w), **_user_columns(user), "created_at": w.now, "updated_at": w.now}
            rows.append(row)
            text = dumps(user_payload(row, raw=False))
            w.event("dsync.user.created", text)
            w.user_refs[rid] = w.outbox.ref(text)
            detail = {"email": user.email, "name": user.name, "state": row["state"]}
            w.note(ChangeKind.USER_CREATED, "user", rid, user.external_id, detail)
        insert_many(w.conn, directory_users, rows)
    return new


def _update_users(w: Writer, changes: ChangeSet) -> None:
    if not changes.users_updated:
        return
    w.need_users({c.previous.roster_id for c in changes.users_updated})
    updates = [
        (c.previous.roster_id, c.record.external_id, _user_columns(c.record), not c.previous.present)
        for c in changes.users_updated
    ]
    _write_updates(w, directory_users, w.users, updates, _USER_UPDATES)


def _remove_users(w: Writer, changes: ChangeSet) -> None:
    """Users gone from the directory: kept, made inactive."""
    if not changes.users_removed:
        return
    w.need_users({c.roster_id for c in changes.users_removed})
    params = []
    for cached_user in changes.users_removed:
        rid = cached_user.roster_id
        w.users[rid] = {**w.users[rid], "state": "inactive", "present": False, "updated_at": w.now}
        w.forget("user", rid)
        params.append({"b_id": rid, "state": "inactive", "present": False, "updated_at": w.now})
        w.event("dsync.user.deleted", w.user_json(rid))
        detail = {"email": w.users[rid]["email"], "reason": "no longer in the directory"}
        w.note(ChangeKind.USER_REMOVED, "user", rid, cached_user.external_id, detail)
    u = directory_users
    w.conn.execute(sa.update(u).where(u.c.id == sa.bindparam("b_id")), params)


def _delete_groups(w: Writer, changes: ChangeSet) -> None:
    """Groups gone from the directory: deleted with their memberships."""
    if not changes.groups_deleted:
        return
    w.need_groups({c.roster_id for c in changes.groups_deleted})
    gone = [c.roster_id for c in changes.groups_deleted]
    g, gum, ggm = directory_groups, group_user_memberships, group_group_memberships
    for start in range(0, len(gone), 900):
        chunk = gone[start : start + 900]
        w.conn.execute(sa.delete(gum).where(gum.c.group_id.in_(chunk)))
        w.conn.execute(
            sa.delete(ggm).where(sa.or_(ggm.c.parent_group_id.in_(chunk), ggm.c.child_group_id.in_(chunk)))
        )
        w.conn.execute(sa.delete(g).where(g.c.id.in_(chunk)))
    for cached_group in changes.groups_deleted:
        rid = cached_group.roster_id
        w.groups[rid] = {**w.groups[rid], "updated_at": w.now}
        w.forget("group", rid)
        w.event("dsync.group.deleted", w.group_json(rid))
        w.note(
            ChangeKind.GROUP_DELETED, "group", rid, cached_group.external_id, {"name": w.groups[rid]["name"]}
        )


@dataclass(frozen=True)
class _Updates:
    """How updates of one kind of object are announced and logged."""

    payload: Callable[..., dict[str, Any]]
    fields: tuple[str, ...]
    event: str
    change: ChangeKind
    object_type: str


_USER_UPDATES = _Updates(
    user_payload, USER_EVENT_FIELDS, "dsync.user.updated", ChangeKind.USER_UPDATED, "user"
)
_GROUP_UPDATES = _Updates(
    group_payload, GROUP_EVENT_FIELDS, "dsync.group.updated", ChangeKind.GROUP_UPDATED, "group"
)


def _write_updates(
    w: Writer,
    table: sa.Table,
    rows: dict[str, dict[str, Any]],
    updates: list[tuple[str, str, dict[str, Any], bool]],
    kind: _Updates,
) -> None:
    """Update rows in bulk; emit ``*.updated`` events carrying ``previous_attributes``.

    An object that comes back after leaving the directory (``returning``) is announced
    as ``*.created`` again, with its old id: a consumer that deleted it on ``*.deleted``
    re-creates it.
    """
    now = w.now
    params = []
    for rid, ext, cols, returning in updates:
        old = rows[rid]
        before = kind.payload(old, raw=False)
        rows[rid] = {**old, **cols, "updated_at": now}
        w.forget(kind.object_type, rid)
        after = kind.payload(rows[rid], raw=False)
        prev = previous_attributes(before, after, kind.fields)
        if old["raw_attributes"] != cols["raw_attributes"]:
            prev["raw_attributes"] = raw_changes(old["raw_attributes"], cols["raw_attributes"])
        params.append({"b_id": rid, **cols, "updated_at": now})
        if returning:
            w.event(kind.event.replace(".updated", ".created"), dumps(after))
        else:
            w.event(kind.event, dumps({**after, "previous_attributes": prev}))
        w.note(kind.change, kind.object_type, rid, ext, {"previous": prev, "returned": returning})
    w.conn.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id")), params)


def _apply_memberships(
    w: Writer, changes: ChangeSet, user_ids: dict[str, str], group_ids: dict[str, str]
) -> None:
    """Write membership changes, their events and their log entries, a few groups at a time
    (a first sync adds a million: only one chunk of them is held as rows)."""
    removed = list(_chunks(changes.members_removed))
    for chunk in removed:
        _delete_members(w, *_split(chunk, user_ids, group_ids))
    for chunk in _chunks(changes.members_added):
        to_users, to_groups = _split(chunk, user_ids, group_ids)
        _insert_members(w, to_users, to_groups)
        _announce(w, ChangeKind.MEMBER_ADDED, "dsync.group.user_added", to_users, to_groups)
    for chunk in removed:
        to_users, to_groups = _split(chunk, user_ids, group_ids)
        _announce(w, ChangeKind.MEMBER_REMOVED, "dsync.group.user_removed", to_users, to_groups)


Pairs = list[tuple[str, str]]


def _chunks(pairs: PairRuns) -> Iterator[Pairs]:
    """Sorted (group, member) pairs in chunks of about ``CHUNK`` that never split a group."""
    chunk: Pairs = []
    for group, members in pairs.runs():
        chunk.extend((group, m) for m in members)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _split(
    pairs: Iterable[tuple[str, str]], user_ids: dict[str, str], group_ids: dict[str, str]
) -> tuple[Pairs, Pairs]:
    """External-id pairs as (group, user) and (parent, child) Roster-id pairs."""
    to_users, to_groups = [], []
    for group_ext, member_ext in pairs:
        gid = group_ids[group_ext]
        if member_ext in user_ids:
            to_users.append((gid, user_ids[member_ext]))
        else:
            to_groups.append((gid, group_ids[member_ext]))
    return to_users, to_groups


def _delete_members(w: Writer, to_users: Pairs, to_groups: Pairs) -> None:
    gum, ggm = group_user_memberships, group_group_memberships
    if to_users:
        w.conn.execute(
            sa.delete(gum).where(gum.c.group_id == sa.bindparam("g"), gum.c.user_id == sa.bindparam("u")),
            [{"g": gid, "u": uid} for gid, uid in to_users],
        )
    if to_groups:
        w.conn.execute(
            sa.delete(ggm).where(
                ggm.c.parent_group_id == sa.bindparam("p"), ggm.c.child_group_id == sa.bindparam("c")
            ),
            [{"p": gid, "c": cid} for gid, cid in to_groups],
        )


def _insert_members(w: Writer, to_users: Pairs, to_groups: Pairs) -> None:
    directory_id = w.target.directory_id
    if to_users:
        columns = ("group_id", "user_id", "directory_id")
        insert_rows(w.conn, group_user_memberships, columns, ((g, u, directory_id) for g, u in to_users))
    if to_groups:
        columns = ("parent_group_id", "child_group_id", "directory_id")
        insert_rows(w.conn, group_group_memberships, columns, ((p, c, directory_id) for p, c in to_groups))


def _announce(w: Writer, change: ChangeKind, kind: str, to_users: Pairs, to_groups: Pairs) -> None:
    """Membership events (users only, as WorkOS has them) and one log entry per group."""
    w.need_users({uid for _, uid in to_users})
    w.need_groups({gid for gid, _ in to_users + to_groups} | {cid for _, cid in to_groups})
    for gid, uid in to_users:
        w.outbox.add_membership(kind, w.user_ref(uid), w.group_ref(gid))
    for pairs, key in ((to_users, "users"), (to_groups, "child_groups")):
        for gid, members in by_group(pairs):
            w.note(change, "membership", gid, w.groups[gid]["idp_id"], {"group": gid, key: members})


def _write_member_hashes(conn: Connection, changes: ChangeSet, group_ids: dict[str, str]) -> None:
    """Keep each group's member digest true: the new digest where the run knows it (full runs),
    else None (an incremental run changed some members: the next full run loads them)."""
    created = {g.external_id for g in changes.groups_created}
    changed = {*changes.members_added.groups(), *changes.members_removed.groups()}
    gone = {g.external_id for g in changes.groups_deleted}
    todo = sorted((set(changes.member_hashes) | changed) - created - gone)
    if todo:
        g = directory_groups
        conn.execute(
            sa.update(g).where(g.c.id == sa.bindparam("b_id")),
            [{"b_id": group_ids[ext], "members_hash": changes.member_hashes.get(ext)} for ext in todo],
        )
