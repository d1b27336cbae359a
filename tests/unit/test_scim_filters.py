"""SCIM filters (RFC 7644 section 3.4.2.2): what they match, and what they refuse."""

from __future__ import annotations

import pytest

from roster.scim.errors import ScimError
from roster.scim.filters import equality, matches, parse_filter

ALICE = {
    "id": "a1",
    "externalId": "ext-1",
    "userName": "Alice@Example.com",
    "displayName": "Alice Park",
    "active": True,
    "emails": [
        {"type": "work", "value": "alice@example.com", "primary": True},
        {"type": "home", "value": "ally@home.example"},
    ],
    "meta": {"created": "2026-01-01T00:00:00Z", "lastModified": "2026-06-01T12:00:00Z"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "alice@example.com"', True),  # userName is case-insensitive
        ('USERNAME Eq "ALICE@EXAMPLE.COM"', True),  # so are attribute names and operators
        ('displayName eq "alice park"', False),  # displayName is exact
        ('displayName eq "Alice Park"', True),
        ('externalId eq "EXT-1"', False),
        ('id eq "a1" and active eq true', True),
        ('id eq "zz" or userName sw "ali"', True),
        ('not (userName co "bob")', True),
        ('userName ew ".com" and (emails.value eq "ally@home.example")', True),
        ('emails[type eq "work" and value co "@example.com"]', True),
        ('emails[type eq "home"].value eq "ally@home.example"', True),
        ('emails[type eq "work"].value eq "ally@home.example"', False),  # the same value must match both
        ("emails[primary eq true]", True),
        ('meta.lastModified gt "2026-05-01T00:00:00Z"', True),
        ('meta.lastModified le "2026-05-01T00:00:00+00:00"', False),
        ('meta.created ge "2026-01-01T00:00:00Z"', True),
        ("userName pr", True),
        ("title pr", False),
        ('urn:ietf:params:scim:schemas:core:2.0:User:userName ne "bob"', True),
        ('userName eq "a" or (id eq "a1" and not (active eq false))', True),
    ],
)
def test_what_a_filter_matches(text: str, expected: bool) -> None:
    assert matches(parse_filter(text, "User"), ALICE, "User") is expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('nickName eq "x"', "nickName"),  # not filterable: never "everything"
        ('password eq "x"', "password"),
        ("userName eq", "ends"),
        ('userName xx "a"', "xx"),
        ('(userName eq "a"', "ends"),
        ('userName eq "a")', "unexpected"),
        ('active eq "yes"', "boolean"),
        ('meta.created gt "yesterday"', "date"),
        ('meta.created co "2026"', "date"),
        ("userName eq null", "pr"),
        ('emails[type eq "work"', "ends"),
        ('emails[value[type eq "x"]]', "nested"),
        ("not userName pr", "("),
        ('userName eq "a\x01b"', "JSON string"),  # a control character: found by test_parser_fuzz
        ('userName eq "a\\qb"', "JSON string"),  # a bad escape
    ],
)
def test_what_a_filter_refuses(text: str, named: str) -> None:
    with pytest.raises(ScimError) as caught:
        parse_filter(text, "User")
    assert caught.value.status == 400 and caught.value.scim_type == "invalidFilter"
    assert named in caught.value.detail


def test_groups_filter_on_their_own_attributes() -> None:
    group = {"id": "g1", "displayName": "Sales", "members": [{"value": "a1"}, {"value": "b2"}]}
    assert matches(parse_filter('members.value eq "b2"', "Group"), group, "Group")
    assert matches(parse_filter('members eq "a1"', "Group"), group, "Group")
    with pytest.raises(ScimError):
        parse_filter('userName eq "x"', "Group")


def test_equality_terms_narrow_a_lookup() -> None:
    assert equality(parse_filter('userName eq "A" and active eq true', "User")) == {
        "userName": "A",
        "active": True,
    }
    assert equality(parse_filter('userName eq "A" or id eq "b"', "User")) == {}
