"""SCIM resources as Roster stores them, and as directory records. Pure: no I/O.

A resource is kept as the provider sent it, normalized: attribute names spelled as the schema
spells them (providers differ in case), booleans as booleans (Entra sends ``"True"``), a
manager as ``{"value": id}`` (Entra sends the bare id), and never ``password``, ``id``,
``meta``, or a user's read-only ``groups``. Unknown attributes are kept as given. A group's
``members`` live in the directory's memberships, not in the stored resource.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from roster.domain.records import DirectoryGroup, DirectoryUser
from roster.scim import schema
from roster.scim.errors import invalid_syntax, invalid_value

DROPPED = frozenset({"password", "id", "meta", "schemas"})  # never stored as given
READ_ONLY = {"User": frozenset({"groups"}), "Group": frozenset()}
COMMON = {"externalid": "externalId", "id": "id", "meta": "meta", "schemas": "schemas"}


def canonical_name(resource_type: str, urn: str, name: str) -> str:
    return COMMON.get(name.lower()) or schema.canonical(urn, name)


def coerce(definition: Mapping[str, Any] | None, value: Any) -> Any:
    """A value as its attribute's type wants it: ``"True"``/``"False"`` for booleans."""
    if definition is None:
        return value
    if definition.get("type") == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if definition.get("type") == "complex":
        if isinstance(value, list) and not definition.get("multiValued") and len(value) == 1:
            value = value[0]  # Entra: a manager as a list of one
        if isinstance(value, list) and definition.get("multiValued"):
            return [normalize_complex(definition, v) if isinstance(v, dict) else v for v in value]
        if isinstance(value, dict):
            return normalize_complex(definition, value)
        if isinstance(value, str) and definition.get("name") == "manager":
            return {"value": value} if value else None  # Entra: the manager's bare id
    return value


def normalize_complex(definition: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, item in value.items():
        sub = schema.sub_attribute(definition, key)
        out[sub["name"] if sub else key] = coerce(sub, item)
    return out


def normalize(body: Mapping[str, Any], resource_type: str) -> tuple[dict[str, Any], list[Any] | None]:
    """(the resource to store, a group's ``members`` as sent or None)."""
    if not isinstance(body, Mapping):
        raise invalid_syntax("body: must be a JSON object")
    core = schema.RESOURCE_TYPES[resource_type][1]
    resource: dict[str, Any] = {}
    members: list[Any] | None = None
    for given, value in body.items():
        key = _unprefixed(str(given), core)
        extension = schema.extension_of(resource_type, key)
        if extension is not None:
            if not isinstance(value, Mapping):
                raise invalid_syntax(f"{extension}: must be a JSON object")
            resource.setdefault(extension, {}).update(
                (canonical_name(resource_type, extension, k), coerce(schema.attribute(extension, k), v))
                for k, v in value.items()
                if v is not None
            )
            continue
        if value is None:
            continue  # null: not set (RFC 7643 section 2.5)
        name = canonical_name(resource_type, core, key)
        if name in DROPPED or name in READ_ONLY[resource_type]:
            continue
        urn = _owner(resource_type, name)
        if urn != core:  # an extension's attribute sent without its schema (Entra: department)
            resource.setdefault(urn, {})[canonical_name(resource_type, urn, name)] = coerce(
                schema.attribute(urn, name), value
            )
            continue
        if resource_type == "Group" and name == "members":
            members = value if isinstance(value, list) else [value]
            continue
        resource[name] = coerce(schema.attribute(core, name), value)
    _check_required(resource, resource_type)
    check_shapes(resource, resource_type)
    resource["schemas"] = [core, *(u for u in schema.RESOURCE_TYPES[resource_type][2] if u in resource)]
    return resource, members


def _unprefixed(key: str, core: str) -> str:
    """``urn:...:core:2.0:User:password`` is ``password``."""
    return key[len(core) + 1 :] if key.lower().startswith(core.lower() + ":") else key


# column sizes of the cache: longer values are refused, not cut
LIMITS = {
    "userName": 200,
    "displayName": 400,
    "title": 200,
    "givenName": 200,
    "familyName": 200,
    "formatted": 400,
    "emails": 320,
    "phoneNumbers": 100,
}
_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "reference": (str,),
    "dateTime": (str,),
    "binary": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "decimal": (int, float),
}


def check_shapes(resource: Mapping[str, Any], resource_type: str) -> None:
    """Every attribute the schemas define has the type they give it; no NUL characters, no value
    longer than the cache keeps. Errors name the attribute."""
    core, extensions = schema.RESOURCE_TYPES[resource_type][1:]
    for urn, holder in ((core, resource), *((u, resource.get(u) or {}) for u in extensions)):
        for name, value in holder.items():
            definition = schema.attribute(urn, name)
            if definition is not None:
                _check_value(name, definition, value)
    _check_text(resource, "")


def _check_value(name: str, definition: Mapping[str, Any], value: Any) -> None:
    if definition.get("multiValued"):
        if not isinstance(value, list):
            raise invalid_value(f"{name}: must be a list")
        for item in value:
            _check_one(name, definition, item)
    else:
        _check_one(name, definition, value)


def _check_one(name: str, definition: Mapping[str, Any], value: Any) -> None:
    kind = definition.get("type")
    if kind == "complex":
        if not isinstance(value, Mapping):
            raise invalid_value(f"{name}: must be an object")
        for key, item in value.items():
            sub = schema.sub_attribute(definition, str(key))
            if sub is not None and item is not None:
                _check_one(f"{name}.{sub['name']}", sub, item)
        limit = LIMITS.get(name)
        if limit and isinstance(value.get("value"), str) and len(value["value"]) > limit:
            raise invalid_value(f"{name}: a value is longer than {limit} characters")
        return
    expected = _SCALARS.get(str(kind))
    if expected and (not isinstance(value, expected) or (bool not in expected and isinstance(value, bool))):
        raise invalid_value(f"{name}: must be a {kind}")
    limit = LIMITS.get(name.rpartition(".")[2])
    if limit and isinstance(value, str) and len(value) > limit:
        raise invalid_value(f"{name}: is longer than {limit} characters")


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid_value(f"{where or 'body'}: must not contain NUL characters")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(str(key), where)
            _check_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def _owner(resource_type: str, name: str) -> str:
    core, extensions = schema.RESOURCE_TYPES[resource_type][1:]
    if schema.attribute(core, name) is not None or name in COMMON.values():
        return core
    for urn in extensions:
        if schema.attribute(urn, name) is not None:
            return urn
    return core


def _check_required(resource: Mapping[str, Any], resource_type: str) -> None:
    required = "userName" if resource_type == "User" else "displayName"
    value = resource.get(required)
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(f"{required}: is required and must be a non-empty string")
    if "active" in resource and not isinstance(resource["active"], bool):
        raise invalid_value("active: must be a boolean")


def member_ids(members: list[Any] | None) -> list[str]:
    """The ids a ``members`` value names (``[{"value": id}, ...]``)."""
    ids = []
    for item in members or ():
        value = item.get("value") if isinstance(item, Mapping) else None
        if not isinstance(value, str) or not value:
            raise invalid_value("members: every member must be an object with a 'value' (its id)")
        ids.append(value)
    return ids


def _dump(resource: Mapping[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _pick(items: Any, key: str = "value") -> str | None:
    """The primary value of a multi-valued attribute, else the work one, else the first."""
    if not isinstance(items, list):
        return None
    candidates = [i for i in items if isinstance(i, Mapping) and isinstance(i.get(key), str)]
    for item in candidates:
        if item.get("primary") is True:
            return str(item[key])
    for item in candidates:
        if str(item.get("type", "")).lower() == "work":
            return str(item[key])
    return str(candidates[0][key]) if candidates else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def user_record(scim_id: str, resource: Mapping[str, Any]) -> DirectoryUser:
    given = resource.get("name")
    name: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    first, last = _text(name.get("givenName")), _text(name.get("familyName"))
    display = _text(resource.get("displayName")) or _text(name.get("formatted"))
    enterprise = resource.get(schema.ENTERPRISE) or {}
    custom = {
        k: v
        for k, v in {
            "department": enterprise.get("department"),
            "employee_number": enterprise.get("employeeNumber"),
            "manager_id": (enterprise.get("manager") or {}).get("value"),
            "external_id": resource.get("externalId"),
        }.items()
        if v
    }
    raw = _dump(resource)
    return DirectoryUser(
        external_id=scim_id,
        dn=None,
        email=_pick(resource.get("emails")),
        name=display or (" ".join(p for p in (first, last) if p) or None),
        first_name=first,
        last_name=last,
        username=_text(resource.get("userName")),
        job_title=_text(resource.get("title")),
        phone=_pick(resource.get("phoneNumbers")),
        active=resource.get("active", True) is not False,
        raw_json=raw,
        content_hash=_hash(raw + _dump(custom)),
        custom_json=_dump(custom),
    )


def group_record(scim_id: str, resource: Mapping[str, Any], members: list[str] | None) -> DirectoryGroup:
    raw = _dump(resource)
    return DirectoryGroup(
        external_id=scim_id,
        dn=None,
        name=str(resource.get("displayName") or ""),
        description=None,
        raw_json=raw,
        content_hash=_hash(raw),
        member_refs=None if members is None else tuple(dict.fromkeys(members)),
    )
