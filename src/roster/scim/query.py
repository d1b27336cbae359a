"""List and read parameters (RFC 7644 sections 3.4.2 and 3.9): ``filter``, 1-based
``startIndex``, ``count``, ``attributes`` and ``excludedAttributes``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roster.scim import schema
from roster.scim.errors import invalid_value
from roster.scim.filters import Node, equality, matches, parse_filter, parse_path

ALWAYS = frozenset({"id", "schemas"})  # returned whatever ``attributes`` says


@dataclass(frozen=True)
class ListQuery:
    node: Node | None = None
    start: int = 1
    count: int = schema.MAX_RESULTS
    attributes: tuple[str, ...] = ()  # dotted paths (URN-prefixed for extensions)
    excluded: tuple[str, ...] = ()
    narrow: Mapping[str, Any] = field(default_factory=dict)
    filters_members: bool = False  # the filter names ``members``

    @property
    def wants_members(self) -> bool:
        """Whether a group's members must be loaded: a filter on them, or an answer that shows
        them (``excludedAttributes=members`` alone never loads them)."""
        if self.filters_members:
            return True
        if any(a.split(".")[0] == "members" for a in self.excluded):
            return False
        return not self.attributes or any(a.split(".")[0] == "members" for a in self.attributes)


def parse_query(params: Mapping[str, str], kind: str) -> ListQuery:
    lowered = {k.lower(): v for k, v in params.items()}
    text = lowered.get("filter")
    node = parse_filter(text, kind) if text and text.strip() else None
    return ListQuery(
        node=node,
        start=max(1, _integer(lowered, "startindex", "startIndex", 1)),
        count=min(schema.MAX_RESULTS, max(0, _integer(lowered, "count", "count", schema.MAX_RESULTS))),
        attributes=_paths(lowered.get("attributes"), kind),
        excluded=_paths(lowered.get("excludedattributes"), kind),
        narrow=equality(node) if node is not None else {},
        filters_members=node is not None and "members" in str(node),
    )


def _integer(params: Mapping[str, str], key: str, name: str, default: int) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid_value(f"{name}: {raw!r} is not an integer") from None


def _paths(raw: str | None, kind: str) -> tuple[str, ...]:
    if not raw:
        return ()
    out = []
    core = schema.RESOURCE_TYPES[kind][1]
    for part in raw.split(","):
        if not part.strip():
            continue
        path = parse_path(part, kind)
        prefix = "" if path.urn == core else f"{path.urn}:"
        out.append(prefix + path.dotted)
    return tuple(out)


def matching(resources: list[dict[str, Any]], query: ListQuery, kind: str) -> list[dict[str, Any]]:
    """The resources the filter selects (a user without ``active`` counts as active)."""
    if query.node is None:
        return resources
    node = query.node
    if kind == "User":
        return [r for r in resources if matches(node, r if "active" in r else {**r, "active": True}, kind)]
    return [r for r in resources if matches(node, r, kind)]


def listing(resources: list[dict[str, Any]], query: ListQuery, kind: str) -> dict[str, Any]:
    """One page of a list response from every matching resource."""
    page = resources[query.start - 1 : query.start - 1 + query.count]
    return page_body(page, len(resources), query, kind)


def page_body(page: list[dict[str, Any]], total: int, query: ListQuery, kind: str) -> dict[str, Any]:
    return {
        "schemas": [schema.LIST],
        "totalResults": total,
        "startIndex": query.start,
        "itemsPerPage": len(page),
        "Resources": [project(r, query, kind) for r in page],
    }


def project(resource: dict[str, Any], query: ListQuery, kind: str) -> dict[str, Any]:
    """The resource with only the asked attributes (plus ``id`` and ``schemas``), or without the
    excluded ones."""
    if query.attributes:
        out = {k: v for k, v in resource.items() if k in ALWAYS}
        for path in query.attributes:
            _copy(resource, out, path)
        return out
    out = dict(resource)
    for path in query.excluded:
        _drop(out, path)
    return out


def _split(path: str) -> tuple[str | None, str, str | None]:
    urn, sep, rest = path.rpartition(":")
    attr, _, sub = rest.partition(".")
    return (urn if sep else None), attr, (sub or None)


def _copy(source: dict[str, Any], target: dict[str, Any], path: str) -> None:
    urn, attr, sub = _split(path)
    if urn and not attr:  # a whole extension
        if urn in source:
            target[urn] = source[urn]
        return
    src = source.get(urn) if urn else source
    if not isinstance(src, dict) or attr not in src:
        return
    dst = target.setdefault(urn, {}) if urn else target
    value = src[attr]
    if sub is None:
        dst[attr] = value
    elif isinstance(value, dict) and sub in value:
        dst.setdefault(attr, {})[sub] = value[sub]
    elif isinstance(value, list):
        dst[attr] = [{sub: i[sub]} for i in value if isinstance(i, dict) and sub in i]


def _drop(target: dict[str, Any], path: str) -> None:
    urn, attr, sub = _split(path)
    if attr in ALWAYS and urn is None:
        return
    if urn and not attr:  # a whole extension
        target.pop(urn, None)
        return
    dst = target.get(urn) if urn else target
    if not isinstance(dst, dict):
        return
    if sub is None:
        dst.pop(attr, None)
    elif isinstance(dst.get(attr), dict):
        dst[attr].pop(sub, None)
    elif isinstance(dst.get(attr), list):
        dst[attr] = [{k: v for k, v in i.items() if k != sub} for i in dst[attr] if isinstance(i, dict)]
