"""Organizations, API keys, directories and sync runs: small, explicit queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.crypto import hash_api_key, new_api_key, same_digest
from roster.ids import new_id
from roster.store.db import as_utc, utcnow
from roster.store.schema import (
    accounts,
    api_keys,
    app_group_members,
    app_groups,
    directories,
    directory_groups,
    directory_users,
    group_group_memberships,
    group_user_memberships,
    organizations,
    sync_log,
    sync_runs,
)


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an API key speaks for: one organization, or every one (admin)."""

    key_id: str
    organization_id: str | None
    last_used_at: datetime | None = None  # as stored before this use (None: never used)

    @property
    def is_admin(self) -> bool:
        return self.organization_id is None

    def can_see(self, organization_id: str) -> bool:
        return self.organization_id is None or self.organization_id == organization_id


def get_row(
    conn: Connection, table: sa.Table, row_id: str, what: str, org: str | None = None
) -> dict[str, Any]:
    """One row by id (and organization, when given), or NotFound."""
    q = sa.select(table).where(table.c.id == row_id)
    if org is not None:
        q = q.where(table.c.organization_id == org)
    row = conn.execute(q).mappings().first()
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found")
    return dict(row)


# Organizations
def create_organization(conn: Connection, name: str, domain: str | None = None) -> dict[str, Any]:
    name = name.strip()
    if not name:
        raise ValueError("name: must not be empty")
    now = utcnow()
    row = {
        "id": new_id("org"),
        "name": name,
        "domain": domain,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(sa.insert(organizations).values(row))
    return row


def get_organization(conn: Connection, org_id: str) -> dict[str, Any]:
    return get_row(conn, organizations, org_id, "organization")


def list_organizations(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(organizations).order_by(organizations.c.id)).mappings()]


# API keys
def create_api_key(conn: Connection, organization_id: str | None, name: str) -> tuple[dict[str, Any], str]:
    if organization_id is not None:
        get_organization(conn, organization_id)
    secret = new_api_key()
    row = {
        "id": new_id("key"),
        "organization_id": organization_id,
        "name": name,
        "key_hash": hash_api_key(secret),
        "hint": secret[-4:],
        "created_at": utcnow(),
    }
    conn.execute(sa.insert(api_keys).values(row))
    return row, secret


def authenticate(conn: Connection, secret: str) -> Principal | None:
    digest = hash_api_key(secret)
    k = api_keys
    row = conn.execute(
        sa.select(k.c.id, k.c.organization_id, k.c.key_hash, k.c.last_used_at).where(
            k.c.key_hash == digest, k.c.revoked_at.is_(None)
        )
    ).first()
    if row is None or not same_digest(row.key_hash, digest):
        return None
    return Principal(row.id, row.organization_id, as_utc(row.last_used_at))


def touch_api_key(conn: Connection, key_id: str, now: datetime) -> None:
    conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


def list_api_keys(conn: Connection, organization_id: str | None = None) -> list[dict[str, Any]]:
    """Keys (never their secrets): every key, or one organization's."""
    k = api_keys
    query = sa.select(k.c.id, k.c.organization_id, k.c.name, k.c.hint, k.c.created_at, k.c.last_used_at)
    query = query.add_columns(k.c.revoked_at).order_by(k.c.id)
    if organization_id is not None:
        query = query.where(k.c.organization_id == organization_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def revoke_api_key(conn: Connection, key_id: str) -> dict[str, Any]:
    row = get_row(conn, api_keys, key_id, "API key")
    if row["revoked_at"] is None:
        conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=utcnow()))
    return get_row(conn, api_keys, key_id, "API key")


# Directories
def create_directory(
    conn: Connection,
    organization_id: str,
    name: str,
    dtype: str,
    config: Mapping[str, Any],
    sealed_secret: str | None,
) -> dict[str, Any]:
    get_organization(conn, organization_id)
    now = utcnow()
    row = {
        "id": new_id("directory"),
        "organization_id": organization_id,
        "name": name,
        "type": dtype,
        "state": "linking",
        "config": dict(config),
        "secret": sealed_secret,
        "created_at": now,
        "updated_at": now,
        "last_sync_at": None,
    }
    conn.execute(sa.insert(directories).values(row))
    return row


def get_directory(conn: Connection, directory_id: str) -> dict[str, Any]:
    return get_row(conn, directories, directory_id, "directory")


def lock_directory(conn: Connection, directory_id: str) -> dict[str, Any]:
    """Take the directory's row first: ingests of one directory apply one after the other, each
    against the cache the previous one committed (and a SCIM request reads what it changes
    only after taking it)."""
    d = directories
    conn.execute(sa.update(d).where(d.c.id == directory_id).values(updated_at=d.c.updated_at))
    return get_directory(conn, directory_id)


def update_directory(conn: Connection, directory_id: str, **values: Any) -> dict[str, Any]:
    get_directory(conn, directory_id)
    conn.execute(
        sa.update(directories).where(directories.c.id == directory_id).values(**values, updated_at=utcnow())
    )
    return get_directory(conn, directory_id)


def list_directories(conn: Connection, organization_id: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(directories).order_by(directories.c.id)
    if organization_id is not None:
        q = q.where(directories.c.organization_id == organization_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def delete_directory(conn: Connection, directory_id: str) -> None:
    """Remove a directory and its cache; its sync runs and events stay as history."""
    get_directory(conn, directory_id)
    # Accounts stay (unlinked: they need a local password); its application groups stay, inactive.
    conn.execute(
        sa.update(accounts)
        .where(accounts.c.directory_id == directory_id)
        .values(directory_id=None, directory_user_id=None, updated_at=utcnow())
    )
    conn.execute(
        sa.update(accounts)
        .where(accounts.c.directory_id.is_(None), accounts.c.disabled_reason == "directory")
        .values(disabled_reason="admin")
    )
    own = sa.select(app_groups.c.id).where(app_groups.c.directory_id == directory_id)
    conn.execute(sa.delete(app_group_members).where(app_group_members.c.group_id.in_(own)))
    conn.execute(
        sa.update(app_groups)
        .where(app_groups.c.directory_id == directory_id)
        .values(state="inactive", directory_group_id=None, updated_at=utcnow())
    )
    for table in (
        group_user_memberships,
        group_group_memberships,
        directory_users,
        directory_groups,
    ):
        conn.execute(sa.delete(table).where(table.c.directory_id == directory_id))
    conn.execute(sa.delete(directories).where(directories.c.id == directory_id))


def directory_metadata(conn: Connection, directory_id: str) -> dict[str, Any]:
    u = directory_users
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(u.c.state, sa.func.count()).where(u.c.directory_id == directory_id).group_by(u.c.state)
        ).all()
    )
    groups = conn.execute(
        sa.select(sa.func.count())
        .select_from(directory_groups)
        .where(directory_groups.c.directory_id == directory_id)
    ).scalar_one()
    return {
        "users": {"active": counts.get("active", 0), "inactive": counts.get("inactive", 0)},
        "groups": groups,
    }


# Sync runs
def start_run(conn: Connection, directory: Mapping[str, Any], trigger: str, kind: str) -> dict[str, Any]:
    row = {
        "id": new_id("sync_run"),
        "directory_id": directory["id"],
        "organization_id": directory["organization_id"],
        "trigger": trigger,
        "kind": kind,
        "status": "running",
        "counts": {},
        "error": None,
        "error_reason": None,
        "started_at": utcnow(),
        "finished_at": None,
    }
    conn.execute(sa.insert(sync_runs).values(row))
    return row


def finish_run(
    conn: Connection,
    run_id: str,
    status: str,
    counts: Mapping[str, int],
    error: str | None = None,
    error_reason: str | None = None,
    kind: str | None = None,
) -> None:
    """``kind``: what the run turned out to be (an incremental run that fell back to a full read).
    A failure does not overwrite a run already marked failed (cancelled, or reaped as abandoned)."""
    values = {"kind": kind} if kind is not None else {}
    where = [sync_runs.c.id == run_id]
    if status == "failed":
        where.append(sync_runs.c.status == "running")
    conn.execute(
        sa.update(sync_runs)
        .where(*where)
        .values(
            status=status,
            counts=dict(counts),
            error=error,
            error_reason=error_reason,
            finished_at=utcnow(),
            **values,
        )
    )


def last_full_run(conn: Connection, directory_id: str) -> datetime | None:
    """When the directory's last successful full run finished."""
    when = conn.execute(
        sa.select(sa.func.max(sync_runs.c.finished_at)).where(
            sync_runs.c.directory_id == directory_id,
            sync_runs.c.kind == "full",
            sync_runs.c.status == "succeeded",
        )
    ).scalar()
    return as_utc(when)


HELD = sa.and_(sync_runs.c.status == "pending_approval", sync_runs.c.decision.is_(None))
"""A run the deletion guard holds and no admin has decided on yet."""


def held_directories(conn: Connection) -> set[str]:
    """Directories with a held run waiting for an admin: schedules leave them alone."""
    return set(conn.execute(sa.select(sync_runs.c.directory_id).where(HELD)).scalars())


def get_run(conn: Connection, run_id: str) -> dict[str, Any]:
    return get_row(conn, sync_runs, run_id, "sync run")


def list_runs(conn: Connection, directory_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    q = sa.select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit)
    if directory_id is not None:
        q = q.where(sync_runs.c.directory_id == directory_id)
    return [dict(r) for r in conn.execute(q).mappings()]


def run_log(
    conn: Connection, run_id: str, limit: int = 1000, after: str | None = None
) -> list[dict[str, Any]]:
    q = sa.select(sync_log).where(sync_log.c.run_id == run_id).order_by(sync_log.c.id).limit(limit)
    if after:
        q = q.where(sync_log.c.id > after)
    return [dict(r) for r in conn.execute(q).mappings()]


def run_view(run: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **run,
        "started_at": as_utc(run["started_at"]),
        "finished_at": as_utc(run["finished_at"]),
    }
