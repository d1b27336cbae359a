"""SCIM PATCH (RFC 7644 section 3.5.2) and the dialects providers speak."""

from __future__ import annotations

from typing import Any

import pytest

from roster.scim.errors import ScimError
from roster.scim.patch import apply_patch
from roster.scim.resources import normalize, user_record
from roster.scim.schema import ENTERPRISE

USER: dict[str, Any] = {
    "userName": "alice@example.com",
    "active": True,
    "name": {"givenName": "Alice", "familyName": "Park"},
    "emails": [{"type": "work", "value": "alice@example.com", "primary": True}],
}


def _ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}


def test_entra_default_dialect() -> None:
    patched = apply_patch(
        USER,
        _ops(
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alicia@example.com"},
            {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0101"},
            {"op": "Add", "path": "nickName", "value": "Ali"},
            {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "1002"},
            {"op": "Add", "path": "manager", "value": [{"value": "bob-id", "$ref": None}]},
        ),
        "User",
    ).resource
    assert patched["active"] is False
    assert patched["emails"] == [{"type": "work", "value": "alicia@example.com", "primary": True}]
    assert patched["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0101"}]
    assert patched["nickName"] == "Ali"
    assert patched[ENTERPRISE]["employeeNumber"] == "1002"
    assert patched[ENTERPRISE]["manager"]["value"] == "bob-id"
    assert ENTERPRISE in patched["schemas"]
    assert user_record("a", patched).active is False


def test_pathless_values_with_dotted_and_urn_keys() -> None:
    patched = apply_patch(
        USER,
        _ops(
            {
                "op": "replace",
                "value": {
                    "name.givenName": "Alicia",
                    f"{ENTERPRISE}:department": "Sales",
                    "displayName": "Alicia Park",
                    "id": "ignored",  # Okta sends the resource's own id
                    "password": "never-kept",
                },
            }
        ),
        "User",
    ).resource
    assert patched["name"] == {"givenName": "Alicia", "familyName": "Park"}
    assert patched[ENTERPRISE] == {"department": "Sales"}
    assert patched["displayName"] == "Alicia Park"
    assert "id" not in patched and "password" not in patched
    assert "name.givenName" not in patched


def test_okta_pathless_deactivate_and_attribute_names_in_any_case() -> None:
    patched = apply_patch(USER, _ops({"op": "replace", "value": {"ACTIVE": False, "Title": "CEO"}}), "User")
    assert patched.resource["active"] is False and patched.resource["title"] == "CEO"


def test_remove_and_replace_of_values() -> None:
    patched = apply_patch(
        {**USER, "emails": [*USER["emails"], {"type": "home", "value": "h@example.com"}]},
        _ops(
            {"op": "remove", "path": 'emails[type eq "home"]'},
            {"op": "remove", "path": "name.familyName"},
            {"op": "replace", "path": "name", "value": {"formatted": "A P"}},
        ),
        "User",
    ).resource
    assert patched["emails"] == USER["emails"]
    assert patched["name"] == {"givenName": "Alice", "formatted": "A P"}  # replace merges sub-attributes


def test_group_member_operations_in_every_dialect() -> None:
    group = {"displayName": "Sales"}
    out = apply_patch(
        group,
        _ops(
            {"op": "Add", "path": "members", "value": [{"value": "a", "$ref": None}, {"value": "b"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "a"}]},  # Entra: only those members
            {"op": "remove", "path": 'members[value eq "c"]'},  # RFC / Entra flagged / Okta
            {"op": "add", "value": {"members": [{"value": "d", "display": "D"}]}},  # path-less
        ),
        "Group",
    )
    assert out.members is None
    assert out.member_ops == [("add", "a"), ("add", "b"), ("remove", "a"), ("remove", "c"), ("add", "d")]
    emptied = apply_patch(
        group,
        _ops(
            {"op": "add", "path": "members", "value": [{"value": "x"}]},
            {"op": "replace", "path": "members", "value": []},
        ),
        "Group",
    )
    assert emptied.members == [] and emptied.member_ops == []  # a replace supersedes what came before
    everyone_out = apply_patch(group, _ops({"op": "remove", "path": "members"}), "Group")
    assert everyone_out.members == []


@pytest.mark.parametrize(
    ("operation", "scim_type", "named"),
    [
        ({"op": "jump", "path": "title", "value": "x"}, "invalidSyntax", "op"),
        ({"op": "remove"}, "noTarget", "path"),
        ({"op": "replace", "value": "not an object"}, "invalidSyntax", "value"),
        ({"op": "add", "path": "title[", "value": "x"}, "invalidPath", "path"),
        ({"op": "replace", "path": 'emails[type eq "x"]', "value": 3}, "invalidValue", "emails"),
    ],
)
def test_bad_operations_name_what_is_wrong(operation: dict[str, Any], scim_type: str, named: str) -> None:
    with pytest.raises(ScimError) as caught:
        apply_patch(USER, _ops(operation), "User")
    assert caught.value.scim_type == scim_type and named in caught.value.detail


def test_normalize_keeps_unknown_attributes_and_drops_what_is_not_the_providers() -> None:
    resource, members = normalize(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:custom"],
            "USERNAME": "bob@example.com",
            "password": "p",
            "groups": [{"value": "g"}],
            "meta": {"resourceType": "User"},
            "department": "Ops",  # Entra: an enterprise attribute without its schema
            "costume": "pirate",
            "nickName": None,
        },
        "User",
    )
    assert members is None
    assert resource == {
        "userName": "bob@example.com",
        ENTERPRISE: {"department": "Ops"},
        "costume": "pirate",
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
    }
    with pytest.raises(ScimError, match="userName"):
        normalize({"name": {"givenName": "x"}}, "User")


def test_null_removes_a_value() -> None:
    patched = apply_patch(
        USER,
        _ops(
            {"op": "replace", "path": "emails", "value": None},
            {"op": "add", "path": "name.givenName", "value": None},
        ),
        "User",
    ).resource
    assert "emails" not in patched and patched["name"] == {"familyName": "Park"}
