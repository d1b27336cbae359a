"""API keys in the admin API: listed (never their secrets) with their last use, and revoked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from roster.api.auth import PrincipalDep, RuntimeDep, check_org, scope_org
from roster.store import repo
from roster.store.db import iso
from roster.store.schema import api_keys

router = APIRouter(prefix="/api/v1", tags=["admin"])


def key_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "api_key",
        "id": row["id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "hint": f"...{row['hint']}",
        "created_at": iso(row["created_at"]),
        "last_used_at": iso(row["last_used_at"]),
        "revoked_at": iso(row["revoked_at"]),
    }


@router.get("/api_keys")
def list_api_keys(rt: RuntimeDep, who: PrincipalDep, organization_id: str | None = None) -> dict[str, Any]:
    """API keys (never their secrets), with their last use; an organization's key sees its own."""
    scoped = scope_org(who, organization_id)
    with rt.engine.connect() as conn:
        return {"object": "list", "data": [key_view(r) for r in repo.list_api_keys(conn, scoped)]}


@router.delete("/api_keys/{key_id}")
def revoke_api_key(key_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Revoke a key at once. An organization's key may revoke its organization's keys (itself
    included), never an admin key."""
    with rt.engine.begin() as conn:
        row = repo.get_row(conn, api_keys, key_id, "API key")
        if row["organization_id"] is None and not who.is_admin:
            raise repo.NotFound(f"API key {key_id!r} not found")
        if row["organization_id"] is not None:
            check_org(who, row["organization_id"], "API key", key_id)
        return key_view(repo.revoke_api_key(conn, key_id))
