"""Graph objects as records: Entra's quirks live here.

- A user's e-mail is ``mail``, else the first of ``otherMails``, else (when the directory allows
  it) ``userPrincipalName``; a guest's UPN (``...#EXT#@tenant``) never counts as an address.
- The phone is ``businessPhones[0]``, else ``mobilePhone``; ``accountEnabled: false`` is inactive.
- Members are users and groups (nested); devices, service principals and contacts are not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from roster.connectors.graph.config import GraphConfig
from roster.domain.mapping import AttributeMapping, map_group, map_user
from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped

USER = "#microsoft.graph.user"
GROUP = "#microsoft.graph.group"
_NOT_ATTRIBUTES = frozenset({"id", "members@delta", "@removed", "@odata.type", "@odata.id"})


def attributes(item: Mapping[str, Any]) -> dict[str, list[str]]:
    """A Graph object's properties as attribute lists (what mapping and raw attributes take)."""
    out: dict[str, list[str]] = {}
    for name, value in item.items():
        if name in _NOT_ATTRIBUTES or name.startswith("@") or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        text = [_text(v) for v in values if v is not None]
        if text:
            out[name] = text
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def user_record(item: Mapping[str, Any], config: GraphConfig) -> DirectoryUser | Skipped:
    decoded = attributes(item)
    upn = str(item.get("userPrincipalName") or "")
    mapping = config.mapping
    if config.upn_as_email and upn and "#EXT#" not in upn.upper():
        mapping = _with_upn(mapping)
    active = item.get("accountEnabled") is not False
    custom = {"user_type": item["userType"]} if item.get("userType") else None
    record = map_user(str(item["id"]), None, active, decoded, mapping, custom)
    if isinstance(record, Skipped) and "#EXT#" in upn.upper() and config.upn_as_email:
        return replace(
            record, reason=record.reason + "; a guest's #EXT# user principal name is not an address"
        )
    return record


def _with_upn(mapping: AttributeMapping) -> AttributeMapping:
    email = mapping.user["email"]
    if "userprincipalname" in email:
        return mapping
    return AttributeMapping(
        user={**mapping.user, "email": (*email, "userprincipalname")}, group=mapping.group
    )


def group_record(
    item: Mapping[str, Any], config: GraphConfig, members: tuple[str, ...] | None
) -> DirectoryGroup:
    return replace(
        map_group(str(item["id"]), None, attributes(item), members or (), config.mapping), member_refs=members
    )


def member_entries(item: Mapping[str, Any]) -> list[tuple[str, bool, bool]]:
    """(member id, is a user or group, removed) for each ``members@delta`` entry."""
    out = []
    for entry in item.get("members@delta") or ():
        kind = entry.get("@odata.type")
        out.append((str(entry["id"]), kind in (USER, GROUP), "@removed" in entry))
    return out
