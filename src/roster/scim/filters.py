"""SCIM filters and attribute paths (RFC 7644 sections 3.4.2.2 and 3.5.2). Pure: no I/O.

``parse_filter(text, resource_type)`` gives a tree that ``matches(tree, resource)`` evaluates
against a resource as JSON. Only the attributes a provider looks resources up by are
filterable; anything else is an ``invalidFilter`` error, never "everything".
``parse_path`` reads a PATCH path: ``attr``, ``attr.sub``, a schema URN prefix, and value
filters (``emails[type eq "work"].value``, ``members[value eq "ID"]``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from roster.scim import schema
from roster.scim.errors import ScimError, invalid_filter, invalid_path


@dataclass(frozen=True)
class AttrPath:
    """An attribute (canonical spelling) with its schema, and a sub-attribute."""

    urn: str
    attr: str
    sub: str | None = None

    @property
    def dotted(self) -> str:
        return f"{self.attr}.{self.sub}" if self.sub else self.attr


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str  # eq ne co sw ew gt ge lt le
    value: Any


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: some value of a multi-valued attribute matches the inner filter."""

    path: AttrPath
    inner: Node


Node = Compare | Present | Logical | Not | ValuePath

MAX_DEPTH = 20  # parentheses and value filters, nested
_COMPARE = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}
# what a provider may filter on: dotted attribute -> kind (ci: case-insensitive string)
FILTERABLE: dict[str, dict[str, str]] = {
    "User": {
        "id": "exact",
        "externalId": "exact",
        "userName": "ci",
        "displayName": "exact",
        "active": "bool",
        "title": "ci",
        "name.givenName": "ci",
        "name.familyName": "ci",
        "name.formatted": "ci",
        "emails": "ci",
        "emails.value": "ci",
        "emails.type": "ci",
        "emails.primary": "bool",
        "meta.created": "date",
        "meta.lastModified": "date",
        "employeeNumber": "exact",
    },
    "Group": {
        "id": "exact",
        "externalId": "exact",
        "displayName": "exact",
        "members": "exact",
        "members.value": "exact",
        "meta.created": "date",
        "meta.lastModified": "date",
    },
}
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<open>[(\[])|(?P<close>\)|\](?:\.(?P<sub>[A-Za-z$][\w$]*))?)'
    r"|(?P<word>[^\s()\[\]\"]+))"
)


def _tokens(text: str) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise invalid_filter(f"filter: cannot read {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "sub" else "close"
        out.append((kind or "", m.group(kind or 0).strip(), m.group("sub")))
    return out


def parse_path(text: str, resource_type: str, *, error: type = ScimError) -> AttrPath:
    """A plain attribute path (no filter): ``userName``, ``name.givenName``, ``urn:...:User:manager``."""
    urn = schema.RESOURCE_TYPES[resource_type][1]
    rest = text.strip()
    whole = schema.extension_of(resource_type, rest)
    if whole is not None:
        return AttrPath(whole, "")  # an extension as a whole (a PATCH path)
    for candidate in (*schema.RESOURCE_TYPES[resource_type][2], urn):
        if rest.lower().startswith(candidate.lower() + ":"):
            urn, rest = candidate, rest[len(candidate) + 1 :]
            break
    attr, _, sub = rest.partition(".")
    if not attr or not re.fullmatch(r"[A-Za-z$][\w$-]*", attr) or (sub and "." in sub):
        raise invalid_path(f"path: {text!r} is not an attribute path")
    found = schema.attribute(urn, attr)
    if found is None and urn == schema.RESOURCE_TYPES[resource_type][1]:
        urn, found = _in_extension(resource_type, attr, urn)
    name = str(found["name"]) if found else attr
    if sub and found is not None:
        definition = schema.sub_attribute(found, sub)
        sub = definition["name"] if definition else sub
    if name.lower() == "meta" and sub:
        sub = {"created": "created", "lastmodified": "lastModified"}.get(sub.lower(), sub)
        name = "meta"
    return AttrPath(urn, name, sub or None)


def _in_extension(resource_type: str, attr: str, core: str) -> tuple[str, dict[str, Any] | None]:
    """An attribute named without its schema that only an extension defines (Entra's ``manager``)."""
    for urn in schema.RESOURCE_TYPES[resource_type][2]:
        found = schema.attribute(urn, attr)
        if found is not None:
            return urn, found
    return core, None


class _Parser:
    def __init__(self, text: str, resource_type: str, strict: bool = True) -> None:
        self.strict = strict  # a filter of a query: only the FILTERABLE attributes
        self.tokens = _tokens(text)
        self.pos = 0
        self.resource_type = resource_type
        self.scope: AttrPath | None = None  # inside ``emails[...]``: ``type`` is ``emails.type``
        self.depth = 0

    def peek(self) -> tuple[str, str, str | None] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str, str | None]:
        token = self.peek()
        if token is None:
            raise invalid_filter("filter: ends too early")
        self.pos += 1
        return token

    def word_is(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() in words

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise invalid_filter(f"filter: nested more than {MAX_DEPTH} levels deep")
        node = self._disjunction()
        self.depth -= 1
        return node

    def _disjunction(self) -> Node:
        node = self.conjunction()
        while self.word_is("or"):
            self.pos += 1
            node = Logical("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.word_is("and"):
            self.pos += 1
            node = Logical("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.word_is("not"):
            self.pos += 1
            kind, _, _ = self.take()
            if kind != "open":
                raise invalid_filter("filter: 'not' must be followed by '('")
            inner = self.expression()
            self.close(")")
            return Not(inner)
        return self.atom()

    def close(self, bracket: str) -> str | None:
        kind, text, sub = self.take()
        if kind != "close" or text[0] != bracket:
            raise invalid_filter(f"filter: expected {bracket!r}, found {text!r}")
        return sub

    def atom(self) -> Node:
        kind, text, _ = self.take()
        if kind == "open" and text == "(":
            node = self.expression()
            self.close(")")
            return node
        if kind != "word":
            raise invalid_filter(f"filter: expected an attribute, found {text!r}")
        path = _within(self.scope, text) if self.scope else parse_path(text, self.resource_type)
        token = self.peek()
        if token is not None and token[:2] == ("open", "["):
            if self.scope is not None:
                raise invalid_filter("filter: value filters cannot be nested")
            self.pos += 1
            self.scope = path
            node = self.expression()
            self.scope = None
            sub = self.close("]")
            value_path = ValuePath(path, node)
            if sub is None:
                return value_path
            # ``emails[type eq "work"].value eq "x"``: the same value must match both
            then = self.comparison(AttrPath(path.urn, path.attr, sub), path)
            return ValuePath(path, Logical("and", node, then))
        return self.comparison(path, None)

    def comparison(self, path: AttrPath, scope: AttrPath | None) -> Node:
        if self.strict:
            _check_filterable(path, self.resource_type)
        kind, op, _ = self.take()
        op = op.lower()
        if kind != "word" or (op not in _COMPARE and op != "pr"):
            raise invalid_filter(f"filter: {op!r} is not a SCIM comparison operator")
        if op == "pr":
            return Present(path)
        kind, raw, _ = self.take()
        value = _literal(kind, raw)
        if self.strict:
            _check_operand(path, op, value, self.resource_type)
        return Compare(path, op, value)


def _within(scope: AttrPath, text: str) -> AttrPath:
    definition = schema.attribute(scope.urn, scope.attr)
    sub = schema.sub_attribute(definition, text) if definition else None
    return AttrPath(scope.urn, scope.attr, sub["name"] if sub else text)


def _literal(kind: str, raw: str) -> Any:
    if kind == "str":
        try:
            return json.loads(raw)
        except ValueError:  # a control character or a bad escape inside the quotes
            raise invalid_filter(f"filter: {raw!r} is not a JSON string (RFC 7644 3.4.2.2)") from None
    if kind == "word":
        low = raw.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        if re.fullmatch(r"-?\d+(\.\d+)?", raw):
            return float(raw) if "." in raw else int(raw)
        if re.fullmatch(r"[\w.@+-]+", raw) and raw.lower() not in ("and", "or", "not"):
            return raw  # an unquoted string, as some providers' documentation writes them
    raise invalid_filter(f"filter: {raw!r} is not a value (strings are written in double quotes)")


def _kind(path: AttrPath, resource_type: str) -> str | None:
    return FILTERABLE[resource_type].get(path.dotted)


def _check_filterable(path: AttrPath, resource_type: str) -> None:
    if _kind(path, resource_type) is None:
        raise invalid_filter(f"filter: {path.dotted!r} is not a filterable attribute of a {resource_type}")


def _check_operand(path: AttrPath, op: str, value: Any, resource_type: str) -> None:
    kind = _kind(path, resource_type)
    if value is None:
        raise invalid_filter(f"filter: compare {path.dotted!r} with 'pr' instead of null")
    if kind == "bool" and (op not in ("eq", "ne") or not isinstance(value, bool)):
        raise invalid_filter(f"filter: {path.dotted!r} is a boolean: use eq or ne with true or false")
    if kind == "date":
        if op in ("co", "sw", "ew"):
            raise invalid_filter(f"filter: {path.dotted!r} is a date: {op!r} does not apply")
        if not isinstance(value, str) or _date(value) is None:
            raise invalid_filter(f"filter: {value!r} is not a date (RFC 3339, e.g. 2026-01-31T12:00:00Z)")
    if kind in ("ci", "exact") and not isinstance(value, str):
        raise invalid_filter(f"filter: {path.dotted!r} is a string: compare it with a quoted value")


def parse_value_filter(text: str, resource_type: str, scope: AttrPath) -> Node:
    """The filter inside a PATCH path's brackets (any attribute; ``type`` means ``scope.type``)."""
    parser = _Parser(text, resource_type, strict=False)
    parser.scope = scope
    node = parser.expression()
    if parser.peek() is not None:
        raise invalid_path(f"path: unexpected {parser.peek()[1]!r} in the value filter")  # type: ignore[index]
    return node


def parse_filter(text: str, resource_type: str) -> Node:
    parser = _Parser(text, resource_type)
    node = parser.expression()
    if parser.peek() is not None:
        raise invalid_filter(f"filter: unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return node


# ----------------------------------------------------------------------------------- evaluation


def matches(node: Node, resource: dict[str, Any], resource_type: str) -> bool:
    if isinstance(node, Logical):
        left = matches(node.left, resource, resource_type)
        if node.op == "and":
            return left and matches(node.right, resource, resource_type)
        return left or matches(node.right, resource, resource_type)
    if isinstance(node, Not):
        return not matches(node.inner, resource, resource_type)
    if isinstance(node, ValuePath):
        items = _raw_items(resource, node.path)
        return any(
            isinstance(item, dict) and matches(node.inner, _lift(item, node.path), resource_type)
            for item in items
        )
    found = [v for v in values_at(resource, node.path) if v is not None and v != ""]
    if isinstance(node, Present):
        return bool(found)
    kind = _kind(node.path, resource_type) or ("bool" if isinstance(node.value, bool) else "ci")
    return any(_compare(kind, node.op, v, node.value) for v in found)


def item_matches(node: Node, item: dict[str, Any], outer: AttrPath, resource_type: str) -> bool:
    """Whether one value of the multi-valued attribute ``outer`` matches a value filter."""
    return matches(node, _lift(item, outer), resource_type)


def _lift(item: dict[str, Any], outer: AttrPath) -> dict[str, Any]:
    """One value of a multi-valued attribute, seen as a resource holding only that value."""
    if outer.urn in (schema.USER, schema.GROUP):
        return {outer.attr: [item]}
    return {outer.urn: {outer.attr: [item]}}


def _raw_items(resource: dict[str, Any], path: AttrPath) -> list[Any]:
    container = resource if path.urn in (schema.USER, schema.GROUP) else resource.get(path.urn) or {}
    top = container.get(path.attr)
    return top if isinstance(top, list) else []


def values_at(resource: dict[str, Any], path: AttrPath) -> list[Any]:
    """Every value at ``path``; a multi-valued complex attribute without a sub-attribute gives
    its ``value`` sub-attributes (RFC 7644 section 3.4.2.2)."""
    container = resource
    if path.urn not in (schema.USER, schema.GROUP):
        container = resource.get(path.urn) or {}
    top = container.get(path.attr)
    items = top if isinstance(top, list) else [top]
    if path.sub is None:
        if isinstance(top, list):
            return [i.get("value") if isinstance(i, dict) else i for i in items]
        return [top]
    return [i.get(path.sub) for i in items if isinstance(i, dict)]


def _date(text: str) -> datetime | None:
    """An RFC 3339 date; one without a zone is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _compare(kind: str, op: str, have: Any, want: Any) -> bool:
    if kind == "bool":
        equal = have is want or str(have).lower() == str(want).lower()
        return equal if op == "eq" else not equal
    if kind == "date":
        a, b = _date(str(have)), _date(str(want))
        if a is None or b is None:
            return False
        return _ordered(op, a, b)
    if not isinstance(have, str):
        return False
    if kind == "ci":
        have, want = have.casefold(), str(want).casefold()
    if op == "co":
        return want in have
    if op == "sw":
        return bool(have.startswith(want))
    if op == "ew":
        return bool(have.endswith(want))
    return _ordered(op, have, want)


def _ordered(op: str, a: Any, b: Any) -> bool:
    return bool(
        {
            "eq": a == b,
            "ne": a != b,
            "gt": a > b,
            "ge": a >= b,
            "lt": a < b,
            "le": a <= b,
        }[op]
    )


def equality(node: Node) -> dict[str, Any]:
    """The ``attr eq value`` terms every match must satisfy (a top-level ``and`` chain): what an
    index can narrow a lookup by before the filter itself runs."""
    if isinstance(node, Compare) and node.op == "eq":
        return {node.path.dotted: node.value}
    if isinstance(node, Logical) and node.op == "and":
        return {**equality(node.left), **equality(node.right)}
    return {}
