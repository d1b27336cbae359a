"""WorkOS-shaped JSON objects, built from store rows (mappings keyed by column name).

The API and the events outbox both use these, so a directory user looks the
same in ``GET /directory_users`` and in a ``dsync.user.created`` event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from roster.store.db import iso

# Roster's directory states, as the WorkOS API names them.
WORKOS_DIRECTORY_STATE = {
    "linking": "validating",
    "linked": "linked",
    "inactive": "unlinked",
    "invalid_credentials": "invalid_credentials",
    "deleting": "deleting",
}


def directory_payload(row: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "directory",
        "id": row["id"],
        "organization_id": row["organization_id"],
        "external_key": row["id"],
        "type": (row.get("config") or {}).get("workos_type") or row["type"],
        "state": WORKOS_DIRECTORY_STATE.get(row["state"], row["state"]),
        "name": row["name"],
        "domain": row.get("domain"),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if metadata is not None:
        out["metadata"] = dict(metadata)
    return out


def user_payload(
    row: Mapping[str, Any], *, raw: bool = True, groups: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    email = row["email"]
    out: dict[str, Any] = {
        "object": "directory_user",
        "id": row["id"],
        "directory_id": row["directory_id"],
        "organization_id": row["organization_id"],
        "idp_id": row["idp_id"],
        "email": email,
        "emails": [{"primary": True, "type": "work", "value": email}] if email else [],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "name": row["name"],
        "username": row["username"],
        "job_title": row["job_title"],
        "state": row["state"],
        "custom_attributes": _custom(row),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if raw:
        out["raw_attributes"] = json.loads(row["raw_attributes"])
    if groups is not None:
        out["groups"] = groups
    return out


def _custom(row: Mapping[str, Any]) -> dict[str, Any]:
    custom: dict[str, Any] = json.loads(row.get("custom_attributes") or "{}")
    if row.get("phone"):
        custom["phone_number"] = row["phone"]
    if row.get("dn"):  # only where the source has DNs
        custom["distinguished_name"] = row["dn"]
    return custom


def group_payload(row: Mapping[str, Any], *, raw: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "directory_group",
        "id": row["id"],
        "idp_id": row["idp_id"],
        "directory_id": row["directory_id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "description": row["description"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if raw:
        out["raw_attributes"] = json.loads(row["raw_attributes"])
    return out


# Fields compared for ``previous_attributes`` on update events.
USER_EVENT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "name",
    "username",
    "job_title",
    "state",
    "custom_attributes",
)
GROUP_EVENT_FIELDS = ("name", "description")


def previous_attributes(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: tuple[str, ...]
) -> dict[str, Any]:
    return {f: before.get(f) for f in fields if before.get(f) != after.get(f)}


def raw_changes(before_json: str, after_json: str) -> dict[str, Any]:
    """Previous values of the raw attributes that changed (None where one was added)."""
    before, after = json.loads(before_json), json.loads(after_json)
    return {k: before.get(k) for k in sorted(before.keys() | after.keys()) if before.get(k) != after.get(k)}
