"""Stored object versions: membership events name them instead of embedding them.

A ``dsync.group.user_added`` or ``user_removed`` event carries the whole user and the whole
group (the WorkOS shape). A first sync of a large directory writes one such event per
membership, so embedding both objects would store every user about ten times and every
large group thousands of times. Instead each distinct version of an object (its JSON text)
is stored once under a hash, the event row names the two versions it carries, and readers
render the event exactly as it was embedded before. A version stays as long as any event
naming it: ``last_used`` is the time of the newest such event, and versions are pruned
with the events (same cutoff).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.store.bulk import db_value
from roster.store.rows import CHUNK
from roster.store.schema import event_objects


def object_ref(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def store_objects(conn: Connection, objects: Mapping[str, str], now: datetime) -> None:
    """Store versions (ref -> JSON text); a version stored before gets ``last_used`` moved up."""
    if not objects:
        return
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    newest = "max" if sqlite else "greatest"  # never backwards (runs on hosts whose clocks differ)
    sql = (
        f"INSERT INTO event_objects (id, data, last_used) VALUES ({mark}, {mark}, {mark}) "
        f"ON CONFLICT (id) DO UPDATE SET last_used = {newest}(event_objects.last_used, excluded.last_used)"
    )
    stamp = db_value(conn, now)
    conn.exec_driver_sql(sql, [(ref, text, stamp) for ref, text in objects.items()])


def membership_data(directory_id: str, user: str, group: str) -> str:
    return '{"directory_id":' + json.dumps(directory_id) + ',"user":' + user + ',"group":' + group + "}"


def resolve_objects(conn: Connection, rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Event rows with their stored objects back: a membership row gets ``data``; a run of
    memberships (``members``) gets ``datas``, one event's data per member, in order."""
    out = [dict(r) for r in rows]
    refs = {r[k] for r in out for k in ("user_ref", "group_ref") if r.get(k)}
    refs.update(ref for r in out if r.get("members") for ref in r["members"].split("\n"))
    if not refs:
        return out
    found: dict[str, str] = {}
    wanted = sorted(refs)
    for start in range(0, len(wanted), CHUNK):
        q = sa.select(event_objects.c.id, event_objects.c.data).where(
            event_objects.c.id.in_(wanted[start : start + CHUNK])
        )
        found.update((ref, data) for ref, data in conn.execute(q))
    for r in out:
        users = r["members"].split("\n") if r.get("members") else [r["user_ref"]] if r.get("user_ref") else []
        if not users:
            continue
        missing = [ref for ref in (*users, r["group_ref"]) if ref not in found]
        if missing:
            raise LookupError(f"event {r['id']}: its stored object {missing[0]} is missing")
        datas = [membership_data(r["directory_id"], found[u], found[r["group_ref"]]) for u in users]
        if r.get("members"):
            r["datas"] = datas
        else:
            r["data"] = datas[0]
    return out


def prune_objects(conn: Connection, cutoff: datetime) -> int:
    """Forget versions that no event newer than ``cutoff`` names."""
    return int(conn.execute(sa.delete(event_objects).where(event_objects.c.last_used < cutoff)).rowcount or 0)
