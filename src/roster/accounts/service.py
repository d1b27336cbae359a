"""Accounts, groups, grants and access checks: the operations behind the admin API and CLI."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.accounts.passwords import hash_password
from roster.domain.linking import effective_groups, effective_members
from roster.ids import new_id
from roster.store.db import utcnow
from roster.store.repo import get_organization, get_row
from roster.store.schema import (
    accounts,
    app_group_members,
    app_groups,
    directories,
    grants,
    group_group_memberships,
    group_user_memberships,
    resources,
)

MANAGED_FIELDS = ("email", "name", "phone", "password")
ROLES = ("admin", "member")


class ManagedField(Exception):
    """A directory-managed field was changed; the API answers 409 naming it and the directory."""

    def __init__(self, field: str, directory: str) -> None:
        self.field, self.directory = field, directory
        super().__init__(
            f"{field}: managed by directory {directory}; change it there (the next sync brings it here)"
        )


class Conflict(Exception):
    pass


def get_account(conn: Connection, account_id: str, org: str | None = None) -> dict[str, Any]:
    return get_row(conn, accounts, account_id, "account", org)


def get_group(conn: Connection, group_id: str, org: str | None = None) -> dict[str, Any]:
    return get_row(conn, app_groups, group_id, "group", org)


def create_account(
    conn: Connection,
    org: str,
    email: str,
    name: str | None = None,
    phone: str | None = None,
    role: str = "member",
    password: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    get_organization(conn, org)
    email = email.strip()
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        raise ValueError(f"email: {email!r} is not an e-mail address")
    if role not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}")
    taken = conn.execute(
        sa.select(accounts.c.id).where(
            accounts.c.organization_id == org, accounts.c.email_lower == email.lower()
        )
    ).first()
    if taken is not None:
        raise Conflict(f"email: {email} already belongs to account {taken.id}")
    now = utcnow()
    row = {
        "id": new_id("account"),
        "organization_id": org,
        "email": email,
        "email_lower": email.lower(),
        "name": name,
        "phone": phone,
        "role": role,
        "disabled": False,
        "disabled_reason": None,
        "password_hash": hash_password(password) if password else None,
        "directory_id": None,
        "directory_user_id": None,
        "provisioned": False,
        "data": dict(data or {}),
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(sa.insert(accounts).values(row))
    return row


def update_account(
    conn: Connection, account_id: str, org: str | None, changes: Mapping[str, Any]
) -> dict[str, Any]:
    account = get_account(conn, account_id, org)
    if account["directory_user_id"]:
        for field in MANAGED_FIELDS:
            if field in changes:
                directory = conn.execute(
                    sa.select(directories.c.name).where(directories.c.id == account["directory_id"])
                ).scalar()
                raise ManagedField(field, f"{directory!r} ({account['directory_id']})")
    values: dict[str, Any] = {}
    if "role" in changes:
        if changes["role"] not in ROLES:
            raise ValueError(f"role: must be one of {', '.join(ROLES)}")
        values["role"] = changes["role"]
    if "data" in changes:
        values["data"] = dict(changes["data"] or {})
    if "disabled" in changes:
        if changes["disabled"]:
            values.update(disabled=True, disabled_reason="admin")
        elif account["disabled_reason"] == "directory":
            raise ManagedField("disabled", f"({account['directory_id']}): the user is disabled there")
        else:
            values.update(disabled=False, disabled_reason=None)
    for field in ("email", "name", "phone"):
        if field in changes:
            values[field] = changes[field]
    if "email" in values:
        email = str(values["email"]).strip()
        clash = conn.execute(
            sa.select(accounts.c.id).where(
                accounts.c.organization_id == account["organization_id"],
                accounts.c.email_lower == email.lower(),
                accounts.c.id != account_id,
            )
        ).first()
        if clash is not None:
            raise Conflict(f"email: {email} already belongs to account {clash.id}")
        values.update(email=email, email_lower=email.lower())
    if "password" in changes:
        values["password_hash"] = hash_password(str(changes["password"]))
    if values:
        conn.execute(
            sa.update(accounts).where(accounts.c.id == account_id).values(**values, updated_at=utcnow())
        )
    return get_account(conn, account_id)


def account_view(row: Mapping[str, Any], groups: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {
        "object": "account",
        "id": row["id"],
        "organization_id": row["organization_id"],
        "email": row["email"],
        "name": row["name"],
        "phone": row["phone"],
        "role": row["role"],
        "disabled": bool(row["disabled"]),
        "disabled_reason": row["disabled_reason"],
        "status": "disabled by directory"
        if row["disabled_reason"] == "directory"
        else ("disabled" if row["disabled"] else "active"),
        "directory_managed": bool(row["directory_user_id"]),
        "directory_id": row["directory_id"],
        "directory_user_id": row["directory_user_id"],
        "managed_fields": list(MANAGED_FIELDS) if row["directory_user_id"] else [],
        "has_local_password": bool(row["password_hash"]),
        "data": row["data"],
    }
    if groups is not None:
        out["groups"] = groups
    return out


def group_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "object": "group",
        "id": row["id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "description": row["description"],
        "source": row["source"],
        "state": row["state"],
        "directory_id": row["directory_id"],
    }


def create_local_group(
    conn: Connection, org: str, name: str, description: str | None = None
) -> dict[str, Any]:
    get_organization(conn, org)
    if not name.strip():
        raise ValueError("name: must not be empty")
    now = utcnow()
    row = {
        "id": new_id("group"),
        "organization_id": org,
        "name": name.strip(),
        "description": description,
        "source": "local",
        "state": "active",
        "directory_id": None,
        "directory_group_id": None,
        "directory_idp_id": None,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(sa.insert(app_groups).values(row))
    return row


def _member_kind(conn: Connection, org: str, member_id: str) -> str:
    if member_id.startswith("account_"):
        get_account(conn, member_id, org)
        return "account"
    get_group(conn, member_id, org)
    return "group"


def add_member(conn: Connection, org: str, group_id: str, member_id: str) -> None:
    group = get_group(conn, group_id, org)
    if group["source"] != "local":
        raise ManagedField(
            "members", f"{group['directory_id']}: members of a directory group follow the directory"
        )
    kind = _member_kind(conn, org, member_id)
    exists = conn.execute(
        sa.select(app_group_members.c.group_id).where(
            app_group_members.c.group_id == group_id, app_group_members.c.member_id == member_id
        )
    ).first()
    if exists is None:
        conn.execute(
            sa.insert(app_group_members).values(
                group_id=group_id, member_id=member_id, member_type=kind, organization_id=org
            )
        )


def remove_member(conn: Connection, org: str, group_id: str, member_id: str) -> None:
    group = get_group(conn, group_id, org)
    if group["source"] != "local":
        raise ManagedField(
            "members", f"{group['directory_id']}: members of a directory group follow the directory"
        )
    conn.execute(
        sa.delete(app_group_members).where(
            app_group_members.c.group_id == group_id, app_group_members.c.member_id == member_id
        )
    )


def delete_group(conn: Connection, org: str, group_id: str) -> None:
    group = get_group(conn, group_id, org)
    if group["source"] == "directory" and group["state"] == "active":
        raise ManagedField("group", f"{group['directory_id']}: remove it in the directory")
    m = app_group_members
    conn.execute(sa.delete(grants).where(grants.c.principal_id == group_id))
    conn.execute(sa.delete(m).where(sa.or_(m.c.group_id == group_id, m.c.member_id == group_id)))
    conn.execute(sa.delete(app_groups).where(app_groups.c.id == group_id))


def membership_edges(conn: Connection, org: str) -> dict[str, list[tuple[str, str]]]:
    """Application group id -> its direct (member id, ``account`` | ``group``) pairs.

    A local group's members are its own rows. A group that comes from a directory has the
    directory's memberships as members, read through the accounts linked to the directory's
    users and the application groups of its groups: each membership is stored once."""
    edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
    m, ag, a = app_group_members, app_groups, accounts
    gum, ggm, child = group_user_memberships, group_group_memberships, app_groups.alias("child")
    local = sa.select(m.c.group_id, m.c.member_id, m.c.member_type).where(m.c.organization_id == org)
    users = (
        sa.select(ag.c.id, a.c.id, sa.literal("account"))
        .select_from(gum)
        .join(ag, ag.c.directory_group_id == gum.c.group_id)
        .join(a, a.c.directory_user_id == gum.c.user_id)
        .where(ag.c.organization_id == org)
    )
    groups = (
        sa.select(ag.c.id, child.c.id, sa.literal("group"))
        .select_from(ggm)
        .join(ag, ag.c.directory_group_id == ggm.c.parent_group_id)
        .join(child, child.c.directory_group_id == ggm.c.child_group_id)
        .where(ag.c.organization_id == org)
    )
    for query in (local, users, groups):
        for gid, mid, kind in conn.execute(query):
            edges[gid].append((mid, kind))
    return edges


def members(conn: Connection, org: str, group_id: str, effective: bool) -> list[dict[str, Any]]:
    get_group(conn, group_id, org)
    edges = membership_edges(conn, org)
    ids = (
        effective_members(group_id, edges)
        if effective
        else {m for m, k in edges.get(group_id, []) if k == "account"}
    )
    rows = conn.execute(
        sa.select(accounts).where(accounts.c.id.in_(sorted(ids))).order_by(accounts.c.id)
    ).mappings()
    return [account_view(dict(r)) for r in rows]


def groups_of(conn: Connection, org: str, account_id: str, effective: bool = True) -> list[dict[str, Any]]:
    parents: dict[str, list[str]] = defaultdict(list)
    for gid, pairs in membership_edges(conn, org).items():
        for member, _ in pairs:
            parents[member].append(gid)
    ids = effective_groups(account_id, parents) if effective else set(parents.get(account_id, []))
    rows = conn.execute(
        sa.select(app_groups).where(app_groups.c.id.in_(sorted(ids))).order_by(app_groups.c.id)
    )
    return [group_view(dict(r)) for r in rows.mappings()]


def grant(conn: Connection, org: str, resource_id: str, principal_id: str) -> None:
    kind = _member_kind(conn, org, principal_id)
    exists = conn.execute(
        sa.select(grants.c.resource_id).where(
            grants.c.organization_id == org,
            grants.c.resource_id == resource_id,
            grants.c.principal_id == principal_id,
        )
    ).first()
    if exists is None:
        conn.execute(
            sa.insert(grants).values(
                organization_id=org,
                resource_id=resource_id,
                principal_id=principal_id,
                principal_type=kind,
                created_at=utcnow(),
            )
        )


def revoke(conn: Connection, org: str, resource_id: str, principal_id: str) -> None:
    conn.execute(
        sa.delete(grants).where(
            grants.c.organization_id == org,
            grants.c.resource_id == resource_id,
            grants.c.principal_id == principal_id,
        )
    )


def set_owner(conn: Connection, org: str, resource_id: str, account_id: str) -> None:
    get_account(conn, account_id, org)
    conn.execute(
        sa.delete(resources).where(resources.c.organization_id == org, resources.c.resource_id == resource_id)
    )
    conn.execute(
        sa.insert(resources).values(
            organization_id=org, resource_id=resource_id, owner_account_id=account_id, created_at=utcnow()
        )
    )


def owned_by(conn: Connection, org: str, account_id: str) -> list[str]:
    q = sa.select(resources.c.resource_id).where(
        resources.c.organization_id == org, resources.c.owner_account_id == account_id
    )
    return sorted(conn.execute(q).scalars())


def can_access(conn: Connection, org: str, account_id: str, resource_id: str) -> dict[str, Any]:
    """Owner, a direct grant, or a grant to any group the account is in (nested groups included).
    A disabled account is refused; what it owns stays recorded and available to others' grants."""
    account = get_account(conn, account_id, org)
    if account["disabled"]:
        return {"allowed": False, "reason": "account_disabled", "via": []}
    owner = conn.execute(
        sa.select(resources.c.owner_account_id).where(
            resources.c.organization_id == org, resources.c.resource_id == resource_id
        )
    ).scalar()
    if owner == account_id:
        return {"allowed": True, "reason": "owner", "via": [account_id]}
    principals = {account_id} | {g["id"] for g in groups_of(conn, org, account_id) if g["state"] == "active"}
    via = sorted(
        conn.execute(
            sa.select(grants.c.principal_id).where(
                grants.c.organization_id == org,
                grants.c.resource_id == resource_id,
                grants.c.principal_id.in_(sorted(principals)),
            )
        ).scalars()
    )
    return {"allowed": bool(via), "reason": "granted" if via else "no_grant", "via": via}
