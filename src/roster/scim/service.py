"""SCIM operations on one directory (RFC 7644 section 3): each write is a small batch of the one
ingest path, applied in the request's own transaction after taking the directory's lock, so
that concurrent requests apply one after the other against what the previous one committed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.engine import Connection, Engine

from roster.domain.delta import Delta, MemberOp, MemberOpKind
from roster.scim import store
from roster.scim.errors import ScimError, invalid_value, not_found, uniqueness
from roster.scim.patch import apply_patch
from roster.scim.query import ListQuery, listing, matching, page_body, parse_query, project
from roster.scim.resources import group_record, member_ids, normalize, user_record
from roster.store import repo
from roster.store.db import iso
from roster.sync.ingest import Policy, ingest


@dataclass(frozen=True)
class Endpoint:
    engine: Engine
    directory_id: str
    base_url: str  # {public URL}/scim/v2/{directory id}


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None
    run_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- rendering


def render_user(ep: Endpoint, row: Mapping[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(row["raw_attributes"])
    resource["id"] = row["idp_id"]
    resource["meta"] = _meta(ep, "User", row)
    return resource


def render_group(
    ep: Endpoint, row: Mapping[str, Any], members: list[tuple[str, str | None, str]] | None
) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(row["raw_attributes"])
    resource["id"] = row["idp_id"]
    if members is not None:
        resource["members"] = [
            {"value": m, "display": name, "type": kind, "$ref": f"{ep.base_url}/{kind}s/{m}"}
            if name
            else {"value": m, "type": kind, "$ref": f"{ep.base_url}/{kind}s/{m}"}
            for m, name, kind in members
        ]
    resource["meta"] = _meta(ep, "Group", row)
    return resource


def _meta(ep: Endpoint, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": iso(row["created_at"]),
        "lastModified": iso(row["updated_at"]),
        "location": f"{ep.base_url}/{kind}s/{row['idp_id']}",
        "version": f'W/"{row["content_hash"]}"',
    }


def _location(body: Mapping[str, Any]) -> dict[str, str]:
    return {"Location": str(body["meta"]["location"])}


# ----------------------------------------------------------------------------------- reads


def get_resource(ep: Endpoint, kind: str, scim_id: str, query: ListQuery) -> Reply:
    with ep.engine.connect() as conn:
        body = _read(ep, conn, kind, scim_id, query.wants_members)
    return Reply(200, project(body, query, kind))


def _read(
    ep: Endpoint, conn: Connection, kind: str, scim_id: str, with_members: bool = True
) -> dict[str, Any]:
    if kind == "User":
        row = store.get_user(conn, ep.directory_id, scim_id)
        if row is None:
            raise not_found("User", scim_id)
        return render_user(ep, row)
    row = store.get_group(conn, ep.directory_id, scim_id)
    if row is None:
        raise not_found("Group", scim_id)
    members = store.members(conn, [row["id"]]).get(row["id"], []) if with_members else None
    return render_group(ep, row, members)


def _render_rows(ep: Endpoint, conn: Connection, kind: str, rows: list[Any], query: ListQuery) -> list[Any]:
    if kind == "User":
        return [render_user(ep, r) for r in rows]
    members = store.members(conn, [r["id"] for r in rows]) if query.wants_members else None
    return [render_group(ep, r, None if members is None else members.get(r["id"], [])) for r in rows]


def _all_matching(ep: Endpoint, kind: str, query: ListQuery) -> list[dict[str, Any]]:
    with ep.engine.connect() as conn:
        lister = store.list_users if kind == "User" else store.list_groups
        rows = lister(conn, ep.directory_id, query.narrow)
        return matching(_render_rows(ep, conn, kind, rows, query), query, kind)


def list_resources(ep: Endpoint, kind: str, query: ListQuery) -> Reply:
    if query.node is None:  # no filter: one page straight from the store (an import reads them all)
        with ep.engine.connect() as conn:
            total, rows = store.page(conn, ep.directory_id, kind, query.start - 1, query.count)
            resources = _render_rows(ep, conn, kind, rows, query)
        return Reply(200, page_body(resources, total, query, kind))
    return Reply(200, listing(_all_matching(ep, kind, query), query, kind))


def search_all(ep: Endpoint, params: Mapping[str, str]) -> Reply:
    """A search at the endpoint's root (RFC 7644 section 3.4.3): users, then groups. A filter
    that names attributes of only one kind finds only that kind."""
    found: list[dict[str, Any]] = []
    errors = []
    query = None
    for kind in ("User", "Group"):
        try:
            query = parse_query(params, kind)
        except ScimError as exc:
            errors.append(exc)
            continue
        found.extend(project(r, query, kind) for r in _all_matching(ep, kind, query))
    if query is None:
        raise errors[0]
    return Reply(200, listing(found, replace(query, attributes=(), excluded=()), "User"))


# ----------------------------------------------------------------------------------- writes


def _write(ep: Endpoint, kind: str, build: Callable[[Connection], tuple[Delta, str]], status: int) -> Reply:
    with ep.engine.begin() as conn:
        locked = repo.lock_directory(conn, ep.directory_id)
        delta, scim_id = build(conn)
        outcome = ingest(conn, ep.directory_id, delta, Policy(guard=None), trigger="scim", locked=locked)
        if not outcome.ok:
            raise ScimError(409, f"not applied: {outcome.error}")
        if status == 204:
            return Reply(204, None, outcome.run_id)
        body = _read(ep, conn, kind, scim_id)
    return Reply(status, body, outcome.run_id, _location(body) if status == 201 else {})


def create_user(ep: Endpoint, body: Any) -> Reply:
    resource, _ = normalize(body, "User")

    def build(conn: Connection) -> tuple[Delta, str]:
        _unique_name(conn, ep, resource["userName"], None)
        scim_id = str(uuid.uuid4())
        return Delta(users={scim_id: user_record(scim_id, resource)}), scim_id

    return _write(ep, "User", build, 201)


def replace_user(ep: Endpoint, scim_id: str, body: Any) -> Reply:
    resource, _ = normalize(body, "User")

    def build(conn: Connection) -> tuple[Delta, str]:
        if store.get_user(conn, ep.directory_id, scim_id) is None:
            raise not_found("User", scim_id)
        _unique_name(conn, ep, resource["userName"], scim_id)
        return Delta(users={scim_id: user_record(scim_id, resource)}), scim_id

    return _write(ep, "User", build, 200)


def patch_user(ep: Endpoint, scim_id: str, body: Any) -> Reply:
    def build(conn: Connection) -> tuple[Delta, str]:
        row = store.get_user(conn, ep.directory_id, scim_id)
        if row is None:
            raise not_found("User", scim_id)
        patched = apply_patch(json.loads(row["raw_attributes"]), body, "User")
        resource, _ = normalize(patched.resource, "User")
        _unique_name(conn, ep, resource["userName"], scim_id)
        return Delta(users={scim_id: user_record(scim_id, resource)}), scim_id

    return _write(ep, "User", build, 200)


def delete(ep: Endpoint, kind: str, scim_id: str) -> Reply:
    """A user leaves the directory (deactivated, never deleted); a group is deleted."""

    def build(conn: Connection) -> tuple[Delta, str]:
        found = (store.get_user if kind == "User" else store.get_group)(conn, ep.directory_id, scim_id)
        if found is None:
            raise not_found(kind, scim_id)
        return Delta(removed=frozenset({scim_id})), scim_id

    return _write(ep, kind, build, 204)


def _unique_name(conn: Connection, ep: Endpoint, username: str, own_id: str | None) -> None:
    holder = store.user_named(conn, ep.directory_id, username)
    if holder is not None and holder["idp_id"] != own_id:
        raise uniqueness(f"userName: {username!r} is already taken by another user of this directory")


def create_group(ep: Endpoint, body: Any) -> Reply:
    resource, members = normalize(body, "Group")
    ids = member_ids(members)

    def build(conn: Connection) -> tuple[Delta, str]:
        _check_members(conn, ep, ids)
        scim_id = str(uuid.uuid4())
        return Delta(groups={scim_id: group_record(scim_id, resource, ids)}), scim_id

    return _write(ep, "Group", build, 201)


def replace_group(ep: Endpoint, scim_id: str, body: Any) -> Reply:
    resource, members = normalize(body, "Group")
    ids = member_ids(members)

    def build(conn: Connection) -> tuple[Delta, str]:
        if store.get_group(conn, ep.directory_id, scim_id) is None:
            raise not_found("Group", scim_id)
        _check_members(conn, ep, ids)
        return Delta(groups={scim_id: group_record(scim_id, resource, ids)}), scim_id

    return _write(ep, "Group", build, 200)


def patch_group(ep: Endpoint, scim_id: str, body: Any, *, respond: bool = True) -> Reply:
    def build(conn: Connection) -> tuple[Delta, str]:
        row = store.get_group(conn, ep.directory_id, scim_id)
        if row is None:
            raise not_found("Group", scim_id)
        patched = apply_patch(json.loads(row["raw_attributes"]), body, "Group")
        resource, _ = normalize(patched.resource, "Group")
        added = [m for op, m in patched.member_ops if op == "add"]
        _check_members(conn, ep, [*(patched.members or ()), *added])
        ops = tuple(
            MemberOp(MemberOpKind.ADD if op == "add" else MemberOpKind.REMOVE, scim_id, m)
            for op, m in patched.member_ops
        )
        record = group_record(scim_id, resource, patched.members)
        return Delta(groups={scim_id: record}, member_ops=ops), scim_id

    return _write(ep, "Group", build, 200 if respond else 204)


def _check_members(conn: Connection, ep: Endpoint, ids: list[str]) -> None:
    if not ids:
        return
    known = store.known_ids(conn, ep.directory_id, ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise invalid_value(f"members: {unknown[0]!r} is not a user or group of this directory")
