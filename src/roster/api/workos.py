"""The WorkOS-shaped read API, served at the root so the official SDK works unchanged."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.engine import Connection

from roster.api.auth import PrincipalDep, RuntimeDep, check_org, scope_org
from roster.api.errors import ApiError
from roster.api.pagination import Order, check_limit, paginate
from roster.api.sync_runner import SyncBusy
from roster.directories import delete_directory as remove_directory
from roster.events import feed
from roster.events.payloads import directory_payload, group_payload, user_payload
from roster.store import repo
from roster.store.rows import CHUNK
from roster.store.schema import (
    directories,
    directory_groups,
    directory_users,
    events,
    group_user_memberships,
    organizations,
)

router = APIRouter(tags=["WorkOS-compatible"])

Limit = Annotated[int, Query()]
Cursor = Annotated[str | None, Query()]


def _groups_of(conn: Connection, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    gum, g = group_user_memberships, directory_groups
    for start in range(0, len(user_ids), CHUNK):
        chunk = user_ids[start : start + CHUNK]
        q = (
            sa.select(gum.c.user_id, g)
            .join(g, g.c.id == gum.c.group_id)
            .where(gum.c.user_id.in_(chunk))
            .order_by(g.c.id)
        )
        for row in conn.execute(q).mappings():
            out[row["user_id"]].append(group_payload(dict(row), raw=False))
    return out


@router.get("/directories")
def list_directories(
    rt: RuntimeDep,
    who: PrincipalDep,
    organization_id: str | None = None,
    search: str | None = None,
    domain: str | None = None,
    limit: Limit = 10,
    before: Cursor = None,
    after: Cursor = None,
    order: Order = "desc",
) -> dict[str, Any]:
    """WorkOS Directory Sync: the organization's directories, as the WorkOS SDK reads them."""
    org = scope_org(who, organization_id)
    where = []
    if org is not None:
        where.append(directories.c.organization_id == org)
    if search:
        where.append(directories.c.name.ilike(f"%{_like(search)}%", escape="\\"))
    if domain:
        orgs = sa.select(organizations.c.id).where(sa.func.lower(organizations.c.domain) == domain.lower())
        where.append(directories.c.organization_id.in_(orgs))
    with rt.engine.connect() as conn:
        page = paginate(conn, directories, where, limit=limit, before=before, after=after, order=order)
        data = [directory_payload(r) for r in page.rows]
    return {"object": "list", "data": data, "list_metadata": page.metadata()}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _directory(conn: Connection, who: Any, directory_id: str) -> dict[str, Any]:
    row = repo.get_directory(conn, directory_id)
    check_org(who, row["organization_id"], "directory", directory_id)
    return row


@router.get("/directories/{directory_id}")
def get_directory(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """WorkOS Directory Sync: one directory."""
    with rt.engine.connect() as conn:
        row = _directory(conn, who, directory_id)
        return directory_payload(row, repo.directory_metadata(conn, directory_id))


@router.delete(
    "/directories/{directory_id}",
    status_code=202,
    response_class=Response,
    responses={202: {"description": "Deleted (no body, as WorkOS answers)."}},
)
def delete_directory(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """WorkOS Directory Sync: delete a directory."""
    with rt.engine.begin() as conn:
        _directory(conn, who, directory_id)
        remove_directory(conn, directory_id)
    return Response(status_code=202)


@router.post("/directories/{directory_id}/sync", status_code=202)
def sync_directory(directory_id: str, rt: RuntimeDep, who: PrincipalDep, request: Request) -> dict[str, str]:
    """Queue a sync run of the directory now."""
    with rt.engine.connect() as conn:
        _directory(conn, who, directory_id)
    try:
        request.app.state.runner.submit(directory_id, trigger="api")
    except SyncBusy as exc:
        raise ApiError(409, "directory_disabled", str(exc)) from None
    return {"status": "queued"}


@router.get("/directory_users")
def list_users(
    rt: RuntimeDep,
    who: PrincipalDep,
    directory: str | None = None,
    group: str | None = None,
    organization_id: str | None = None,
    email: str | None = None,
    idp_id: str | None = None,
    limit: Limit = 10,
    before: Cursor = None,
    after: Cursor = None,
    order: Order = "desc",
) -> dict[str, Any]:
    """WorkOS Directory Sync: directory users of a directory or group, with cursor pagination."""
    u = directory_users
    with rt.engine.connect() as conn:
        where = _owner_filter(conn, who, u, directory, organization_id)
        if group is not None:
            grow = repo.get_row(conn, directory_groups, group, "directory group")
            check_org(who, grow["organization_id"], "directory group", group)
            gum = group_user_memberships
            where.append(u.c.id.in_(sa.select(gum.c.user_id).where(gum.c.group_id == group)))
        if email is not None:
            where.append(u.c.email_lower == email.strip().lower())
        if idp_id is not None:
            where.append(u.c.idp_id == idp_id)
        page = paginate(conn, u, where, limit=limit, before=before, after=after, order=order)
        groups = _groups_of(conn, [r["id"] for r in page.rows])
        data = [user_payload(r, groups=groups.get(r["id"], [])) for r in page.rows]
    return {"object": "list", "data": data, "list_metadata": page.metadata()}


def _owner_filter(
    conn: Connection, who: Any, table: sa.Table, directory: str | None, organization_id: str | None
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if directory is not None:
        _directory(conn, who, directory)
        where.append(table.c.directory_id == directory)
    org = scope_org(who, organization_id)
    if org is not None:
        where.append(table.c.organization_id == org)
    return where


@router.get("/directory_users/{user_id}")
def get_user(user_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """WorkOS Directory Sync: one directory user with its groups and raw attributes."""
    with rt.engine.connect() as conn:
        row = repo.get_row(conn, directory_users, user_id, "directory user")
        check_org(who, row["organization_id"], "directory user", user_id)
        return user_payload(row, groups=_groups_of(conn, [user_id]).get(user_id, []))


@router.get("/directory_groups")
def list_groups(
    rt: RuntimeDep,
    who: PrincipalDep,
    directory: str | None = None,
    user: str | None = None,
    organization_id: str | None = None,
    limit: Limit = 10,
    before: Cursor = None,
    after: Cursor = None,
    order: Order = "desc",
) -> dict[str, Any]:
    """WorkOS Directory Sync: directory groups of a directory or user."""
    g = directory_groups
    with rt.engine.connect() as conn:
        where = _owner_filter(conn, who, g, directory, organization_id)
        if user is not None:
            urow = repo.get_row(conn, directory_users, user, "directory user")
            check_org(who, urow["organization_id"], "directory user", user)
            gum = group_user_memberships
            where.append(g.c.id.in_(sa.select(gum.c.group_id).where(gum.c.user_id == user)))
        page = paginate(conn, g, where, limit=limit, before=before, after=after, order=order)
        data = [group_payload(r) for r in page.rows]
    return {"object": "list", "data": data, "list_metadata": page.metadata()}


@router.get("/directory_groups/{group_id}")
def get_group(group_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """WorkOS Directory Sync: one directory group."""
    with rt.engine.connect() as conn:
        row = repo.get_row(conn, directory_groups, group_id, "directory group")
        check_org(who, row["organization_id"], "directory group", group_id)
        return group_payload(row)


def _timestamp(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    if not value.endswith("Z"):
        raise ApiError(
            422, "invalid_request_parameters", f"{name}: {value!r} must be an ISO 8601 UTC time ending in Z"
        )
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        raise ApiError(
            422, "invalid_request_parameters", f"{name}: {value!r} is not an ISO 8601 time"
        ) from None


@router.get("/events")
def list_events(
    rt: RuntimeDep,
    who: PrincipalDep,
    event_types: Annotated[str | None, Query(alias="events")] = None,
    organization_id: str | None = None,
    range_start: str | None = None,
    range_end: str | None = None,
    limit: Limit = 10,
    before: Cursor = None,
    after: Cursor = None,
    order: Order = "asc",
) -> dict[str, Any]:
    """Events, oldest first by default; ids grow in commit order, so ``after`` never skips one."""
    check_limit(limit)
    if not event_types or not event_types.strip(","):
        raise ApiError(
            422,
            "invalid_request_parameters",
            "events: give one or more event types, comma-separated (e.g. dsync.user.created)",
            [{"field": "events", "code": "required"}],
        )
    types = [t.strip() for t in event_types.split(",") if t.strip()]
    start, end = _timestamp("range_start", range_start), _timestamp("range_end", range_end)
    e = events
    where: list[sa.ColumnElement[bool]] = [e.c.event.in_(types)]
    org = scope_org(who, organization_id)
    if org is not None:
        where.append(e.c.organization_id == org)
    if start is not None:
        where.append(e.c.created_at >= start)
    if end is not None:
        where.append(e.c.created_at < end)
    with rt.engine.connect() as conn:

        def fetch(cursor: str | None, ascending: bool, size: int) -> tuple[list[dict[str, Any]], bool]:
            if ascending:
                found = feed.read(conn, where, limit=size, after=cursor)
            else:
                found = feed.read(conn, where, limit=size, before=cursor, descending=True)
            return found.events, found.more

        page = paginate(conn, e, where, limit=limit, before=before, after=after, order=order, fetch=fetch)
    return {"object": "list", "data": [event_json(r) for r in page.rows], "list_metadata": page.metadata()}


def event_json(row: Any) -> dict[str, Any]:
    from roster.store.db import iso

    return {
        "object": "event",
        "id": row["id"],
        "event": row["event"],
        "data": json.loads(row["data"]),
        "created_at": iso(row["created_at"]),
        "context": {},
    }
