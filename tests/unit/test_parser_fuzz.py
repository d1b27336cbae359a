"""The parsers of untrusted text, fuzzed: search paths, DNs, SCIM filters and the LDAP names and
filters built from a login or a value. Each either answers or raises its own documented error,
and none grows faster than linearly with its input (64 times the input must cost well under
4,096 times the work: the ratio is measured here, in the same run, not a wall-clock time)."""

from __future__ import annotations

import time
from collections.abc import Callable

import ldap.dn
from hypothesis import given, settings
from hypothesis import strategies as st

from roster.connectors.ldap.active_directory import escape_bytes
from roster.connectors.ldap.bind import bind_name
from roster.domain.dn import normalize_dn
from roster.domain.ldap_path import SearchPathError, parse_search_path, search_roots
from roster.scim.errors import ScimError
from roster.scim.filters import matches, parse_filter

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
DN_LIKE = st.text(alphabet='OUDCNou=,+\\"#<>; ab1.é\x00 ', max_size=120)
FILTER_LIKE = st.text(alphabet='userNam ()"eqcoswprgtlandoxrvmail.\\[]', max_size=120)
USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "ada@example.com",
    "active": True,
    "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "meta": {"lastModified": "2026-01-01T00:00:00Z"},
}


@settings(max_examples=400, deadline=None)  # the time is the linearity test's
@given(st.one_of(TEXT, DN_LIKE))
def test_a_search_path_parses_or_names_its_fault(text: str) -> None:
    try:
        path = parse_search_path(text)
    except SearchPathError as exc:
        assert str(exc)
    else:
        assert parse_search_path(str(path)) == path  # what it prints, it reads back


@settings(max_examples=400, deadline=None)  # the time is the linearity test's
@given(st.one_of(TEXT, DN_LIKE))
def test_a_dn_normalizes_or_is_refused_never_crashes(text: str) -> None:
    normalized = normalize_dn(text)
    assert normalized is None or normalize_dn(normalized) == normalized


@settings(max_examples=400, deadline=None)  # the time is the linearity test's
@given(st.one_of(TEXT, FILTER_LIKE))
def test_a_scim_filter_parses_or_is_a_400(text: str) -> None:
    try:
        node = parse_filter(text, "User")
    except ScimError as exc:
        assert exc.status == 400 and exc.scim_type in ("invalidFilter", "invalidValue", "invalidPath")
    else:
        assert matches(node, USER, "User") in (True, False)


ATTRS = st.sampled_from(
    ["userName", "emails.value", "name.givenName", "active", "meta.lastModified", "title"]
)
OPS = st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
VALUES = st.one_of(
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'), st.just("true")
)
TERMS = st.one_of(
    st.builds(lambda a, o, v: f"{a} {o} {v}", ATTRS, OPS, VALUES), st.builds(lambda a: f"{a} pr", ATTRS)
)
FILTERS = st.recursive(
    TERMS,
    lambda inner: st.one_of(
        st.builds(lambda a, b, j: f"({a}) {j} ({b})", inner, inner, st.sampled_from(["and", "or"])),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a: f"emails[{a}]", TERMS),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(FILTERS)
def test_filters_from_the_grammar_parse_or_name_the_operand(text: str) -> None:
    """RFC 7644 3.4.2.2: well-formed filters parse unless an operand does not suit the attribute."""
    try:
        node = parse_filter(text, "User")
    except ScimError as exc:
        assert exc.status == 400 and exc.scim_type in ("invalidFilter", "invalidValue")
    else:
        assert matches(node, USER, "User") in (True, False)


@settings(max_examples=400, deadline=None)  # the time is the linearity test's
@given(TEXT)
def test_a_login_never_adds_to_the_bind_dn(login: str) -> None:
    """RFC 4514: whatever the login, the bind DN has the template's RDNs, the login one value."""
    try:
        name = bind_name("uid={login},ou=People,dc=example,dc=com", login)
    except ValueError as exc:
        assert str(exc).startswith("login:")
        return
    rdns = ldap.dn.str2dn(name)
    assert len(rdns) == 4 and rdns[0][0][0] == "uid" and rdns[0][0][1] == login.strip()


@given(st.binary(max_size=64))
def test_a_binary_filter_value_is_escaped_whole(raw: bytes) -> None:
    escaped = escape_bytes(raw)
    assert len(escaped) == 3 * len(raw) and bytes.fromhex(escaped.replace("\\", "")) == raw


def _work(parse: Callable[[int], object], size: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        parse(size)
        best = min(best, time.process_time() - started)
    return max(best, 1e-6)


def _grows_linearly(parse: Callable[[int], object], small: int = 50) -> float:
    ratio = _work(parse, small * 64) / _work(parse, small)
    assert ratio < 1024, f"64 times the input took {ratio:.0f} times the work"  # quadratic: ~4,096
    return ratio


def test_parsers_grow_linearly_with_their_input() -> None:
    def paths(n: int) -> object:
        try:
            return search_roots(["OU=x,DC=a"] * n)
        except SearchPathError:
            return None

    def long_path(n: int) -> object:
        try:
            return parse_search_path(",".join(f"OU=u{i}" for i in range(n)) + ",DC=a")
        except SearchPathError:
            return None

    def dn(n: int) -> object:
        return normalize_dn(",".join(f"cn=a\\,b{i}" for i in range(n)))

    def scim(n: int) -> object:
        try:
            return parse_filter(" or ".join(f'userName eq "u{i}"' for i in range(n)), "User")
        except ScimError:
            return None

    for parse in (paths, long_path, dn, scim):
        _grows_linearly(parse)
