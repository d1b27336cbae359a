"""SCIM PATCH (RFC 7644 section 3.5.2) on a stored resource, tolerant of providers' dialects. Pure.

Tolerated: op names in any case (Entra sends ``Replace``); path-less values whose keys are
dotted (``name.givenName``) or schema-URN-prefixed; value filters in paths
(``emails[type eq "work"].value``, creating the value when none matches, as Entra expects);
``"True"``/``"False"`` for booleans; Entra's member removal by value
(``{"op": "Remove", "path": "members", "value": [{"value": id}]}``) which removes only those
members. A group's member changes come out as operations, applied by the ingest against the
memberships the store holds, so that concurrent PATCHes of one group lose nothing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roster.scim import schema
from roster.scim.errors import invalid_path, invalid_syntax, invalid_value, no_target
from roster.scim.filters import AttrPath, Node, equality, item_matches, parse_path, parse_value_filter
from roster.scim.resources import DROPPED, READ_ONLY, canonical_name, coerce, member_ids

_OPS = ("add", "remove", "replace")


@dataclass
class Patched:
    """A resource after PATCH, and its group's member changes in order."""

    resource: dict[str, Any]
    members: list[str] | None = None  # a new whole member list (replace, remove all)
    member_ops: list[tuple[str, str]] = field(default_factory=list)  # ("add" | "remove", id)


@dataclass(frozen=True)
class _Target:
    path: AttrPath
    value_filter: Node | None = None


def apply_patch(resource: Mapping[str, Any], body: Any, resource_type: str) -> Patched:
    operations = _operations(body)
    out = Patched(copy.deepcopy(dict(resource)))
    for index, operation in enumerate(operations):
        where = f"Operations[{index}]"
        if not isinstance(operation, Mapping):
            raise invalid_syntax(f"{where}: must be a JSON object")
        keys = {str(k).lower(): v for k, v in operation.items()}
        op = str(keys.get("op", "")).lower()
        if op not in _OPS:
            raise invalid_syntax(f"{where}.op: {keys.get('op')!r} is not add, remove or replace")
        path, value = keys.get("path"), keys.get("value")
        if path in (None, ""):
            if op == "remove":
                raise no_target(f"{where}.path: a remove operation needs a path")
            _pathless(out, op, value, resource_type, where)
        elif not isinstance(path, str):
            raise invalid_path(f"{where}.path: must be a string")
        else:
            _one(out, op, _target(path, resource_type), value, resource_type)
    _schemas(out.resource, resource_type)
    return out


def _operations(body: Any) -> list[Any]:
    if not isinstance(body, Mapping):
        raise invalid_syntax("body: must be a JSON object")
    lowered = {str(k).lower(): v for k, v in body.items()}
    operations = lowered.get("operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("Operations: must be a non-empty list of operations")
    return operations


def _pathless(out: Patched, op: str, value: Any, resource_type: str, where: str) -> None:
    """``{"op": "replace", "value": {"active": false, "name.givenName": "x", "urn:...:manager": ...}}``."""
    if not isinstance(value, Mapping):
        raise invalid_syntax(f"{where}.value: a path-less operation needs an object of attributes")
    for key, item in value.items():
        extension = schema.extension_of(resource_type, key)
        if extension is not None and isinstance(item, Mapping):
            for sub_key, sub_item in item.items():
                _one(out, op, _target(f"{extension}:{sub_key}", resource_type), sub_item, resource_type)
        else:
            _one(out, op, _target(str(key), resource_type), item, resource_type)


_FILTERED = re.compile(r"^(?P<attr>[^\[\]]+)\[(?P<filter>.*)\](?:\.(?P<sub>[A-Za-z$][\w$]*))?$", re.S)


def _target(text: str, resource_type: str) -> _Target:
    m = _FILTERED.match(text.strip())
    if m is None:
        path = parse_path(text, resource_type)
        return _Target(AttrPath(path.urn, _name(path, resource_type), path.sub))
    outer = parse_path(m["attr"], resource_type)
    outer = AttrPath(outer.urn, _name(outer, resource_type))
    node = parse_value_filter(m["filter"], resource_type, outer)
    sub = m["sub"]
    if sub:
        definition = schema.attribute(outer.urn, outer.attr)
        found = schema.sub_attribute(definition, sub) if definition else None
        sub = found["name"] if found else sub
    return _Target(AttrPath(outer.urn, outer.attr, sub), node)


def _name(path: AttrPath, resource_type: str) -> str:
    return canonical_name(resource_type, path.urn, path.attr)


def _one(out: Patched, op: str, target: _Target, value: Any, resource_type: str) -> None:
    path = target.path
    if path.attr in DROPPED or path.attr in READ_ONLY[resource_type]:
        return  # ids and meta are Roster's; a password is never kept
    if value is None and op != "remove":
        op = "remove"  # setting null removes the value (RFC 7644 section 3.5.2.3)
    if resource_type == "Group" and path.attr == "members" and path.urn == schema.GROUP:
        _members(out, op, target, value)
        return
    if path.attr == "" and target.value_filter is None:  # the path is an extension's URN
        _extension(out.resource, op, path.urn, value, resource_type)
        return
    container = _container(out.resource, path, create=op != "remove")
    if container is None:
        return
    definition = schema.attribute(path.urn, path.attr)
    if target.value_filter is not None:
        _filtered(container, op, target, value, definition, resource_type)
    elif path.sub is not None:
        _sub(container, op, path, value, definition)
    else:
        _whole(container, op, path.attr, value, definition)


def _extension(resource: dict[str, Any], op: str, urn: str, value: Any, resource_type: str) -> None:
    if op == "remove":
        resource.pop(urn, None)
        return
    if not isinstance(value, Mapping):
        raise invalid_value(f"{urn}: the value must be an object of the extension's attributes")
    current = resource.setdefault(urn, {})
    for key, item in value.items():
        if str(key).lower() != "schemas":
            name = canonical_name(resource_type, urn, str(key))
            current[name] = coerce(schema.attribute(urn, name), item)


def _container(resource: dict[str, Any], path: AttrPath, create: bool) -> dict[str, Any] | None:
    if path.urn in (schema.USER, schema.GROUP):
        return resource
    found = resource.get(path.urn)
    if not isinstance(found, dict):
        if not create:
            return None
        found = resource[path.urn] = {}
    return found


def _whole(container: dict[str, Any], op: str, attr: str, value: Any, definition: Any) -> None:
    multi = bool(definition and definition.get("multiValued")) or isinstance(container.get(attr), list)
    if op == "remove":
        if value is not None and multi and isinstance(container.get(attr), list):
            drop = [v for v in (value if isinstance(value, list) else [value])]
            container[attr] = [i for i in container[attr] if not _same_value(i, drop)]
        else:
            container.pop(attr, None)
        return
    value = coerce(definition, value)
    if multi:
        items = value if isinstance(value, list) else [value]
        if op == "add":
            existing = list(container.get(attr) or [])
            container[attr] = existing + [i for i in items if i not in existing]
        else:
            container[attr] = items
    elif isinstance(value, dict) and isinstance(container.get(attr), dict):
        container[attr] = {**container[attr], **value}  # sub-attributes not given stay
    elif value is None:
        container.pop(attr, None)
    else:
        container[attr] = value


def _same_value(item: Any, drop: list[Any]) -> bool:
    key = item.get("value") if isinstance(item, Mapping) else item
    return any((d.get("value") if isinstance(d, Mapping) else d) == key for d in drop)


def _sub(container: dict[str, Any], op: str, path: AttrPath, value: Any, definition: Any) -> None:
    sub_def = schema.sub_attribute(definition, path.sub or "") if definition else None
    current = container.get(path.attr)
    items = current if isinstance(current, list) else None
    if op == "remove":
        for item in items if items is not None else [current]:
            if isinstance(item, dict):
                item.pop(path.sub, None)
        return
    value = coerce(sub_def, value)
    if items is not None:
        if not items:
            items.append({})
        for item in items:
            if isinstance(item, dict):
                item[path.sub or ""] = value
        return
    if not isinstance(current, dict):
        current = container[path.attr] = {}
    current[path.sub or ""] = value


def _filtered(
    container: dict[str, Any], op: str, target: _Target, value: Any, definition: Any, resource_type: str
) -> None:
    path, node = target.path, target.value_filter
    assert node is not None
    outer = AttrPath(path.urn, path.attr)
    items = container.get(path.attr)
    items = items if isinstance(items, list) else []
    hits = [i for i in items if isinstance(i, dict) and item_matches(node, i, outer, resource_type)]
    if op == "remove":
        if path.sub is None:
            container[path.attr] = [i for i in items if not any(i is h for h in hits)]
        for hit in hits if path.sub else ():
            hit.pop(path.sub, None)
        return
    sub_def = schema.sub_attribute(definition, path.sub) if definition and path.sub else definition
    value = coerce(sub_def, value)
    if not hits:  # Entra: replace emails[type eq "work"].value on a user without a work e-mail
        fresh = {k.partition(".")[2]: v for k, v in equality(node).items() if "." in k}
        if not fresh:
            raise no_target(f"path: no value of {path.attr} matches the filter")
        items.append(fresh)
        container[path.attr] = items
        hits = [fresh]
    for hit in hits:
        if path.sub:
            hit[path.sub] = value
        elif isinstance(value, Mapping):
            hit.update(value)
        else:
            raise invalid_value(f"{path.attr}: a filtered value must be replaced by an object")


def _members(out: Patched, op: str, target: _Target, value: Any) -> None:
    if target.value_filter is not None:  # members[value eq "ID"]
        ids = [v for k, v in equality(target.value_filter).items() if k == "members.value"]
        if op != "remove" or len(ids) != 1 or target.path.sub:
            raise invalid_path('path: use members[value eq "ID"] only to remove that member')
        out.member_ops.append(("remove", str(ids[0])))
        return
    if op == "remove" and value is None:
        out.members, out.member_ops = [], []  # remove every member
        return
    ids = member_ids(value if isinstance(value, list) else [value])
    if op == "replace":
        out.members, out.member_ops = ids, []
        return
    out.member_ops.extend((op, i) for i in ids)


def _schemas(resource: dict[str, Any], resource_type: str) -> None:
    core, extensions = schema.RESOURCE_TYPES[resource_type][1:]
    for urn in extensions:
        if resource.get(urn) == {}:
            del resource[urn]
    resource["schemas"] = [core, *(u for u in extensions if u in resource)]
