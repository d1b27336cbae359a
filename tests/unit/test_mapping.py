import json

import pytest

from roster.domain.dn import normalize_dn
from roster.domain.mapping import (
    AttributeMapping,
    MappingError,
    decode_attributes,
    map_group,
    map_user,
)
from roster.domain.records import DirectoryUser, Skipped


def user(attrs: dict[str, list[bytes]], mapping: AttributeMapping | None = None) -> DirectoryUser | Skipped:
    decoded = decode_attributes(attrs, frozenset({"objectguid"}))
    return map_user("id-1", "uid=a,dc=x", True, decoded, mapping or AttributeMapping())


def test_default_mapping() -> None:
    record = user(
        {
            "displayName": [b"Ada Lovelace"],
            "givenName": [b"Ada"],
            "sn": [b"Lovelace"],
            "mail": [b"ada@example.com"],
            "telephoneNumber": [b"+1 555"],
            "uid": [b"ada"],
            "title": [b"Countess"],
        }
    )
    assert isinstance(record, DirectoryUser)
    assert (record.name, record.first_name, record.last_name) == ("Ada Lovelace", "Ada", "Lovelace")
    assert (record.email, record.phone, record.username, record.job_title) == (
        "ada@example.com",
        "+1 555",
        "ada",
        "Countess",
    )


def test_name_falls_back_to_given_and_sn_then_cn() -> None:
    a = user({"givenName": [b"Ada"], "sn": [b"Lovelace"], "mail": [b"a@x.io"], "cn": [b"A L"]})
    b = user({"mail": [b"a@x.io"], "cn": [b"A L"]})
    assert isinstance(a, DirectoryUser) and isinstance(b, DirectoryUser)
    assert a.name == "Ada Lovelace"
    assert b.name == "A L"


def test_samaccountname_is_the_username_in_ad() -> None:
    record = user({"sAMAccountName": [b"ada"], "mail": [b"a@x.io"]})
    assert isinstance(record, DirectoryUser) and record.username == "ada"


def test_user_without_email_is_skipped_with_reason() -> None:
    record = user({"cn": [b"Nobody"]})
    assert isinstance(record, Skipped)
    assert record.reason == "no e-mail address (attribute mail is empty)"


def test_invalid_email_is_skipped() -> None:
    record = user({"mail": [b"not-an-address"]})
    assert isinstance(record, Skipped) and "not valid" in record.reason


def test_override_maps_email_from_another_attribute() -> None:
    mapping = AttributeMapping.from_overrides(user={"email": "userPrincipalName"})
    record = user({"userPrincipalName": [b"ada@corp.example"], "mail": [b"other@x.io"]}, mapping)
    assert isinstance(record, DirectoryUser) and record.email == "ada@corp.example"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mail": "x"}, "mapping.user.mail: unknown field"),
        ({"email": "bad attr!"}, "mapping.user.email: 'bad attr!' is not an attribute name"),
    ],
)
def test_bad_overrides_name_the_field(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        AttributeMapping.from_overrides(user=overrides)


def test_binary_values_are_base64_and_raw_attributes_kept() -> None:
    guid = bytes(range(16))
    record = user({"objectGUID": [guid], "mail": [b"a@x.io"], "jpegPhoto": [b"\xff\xd8\xff"]})
    assert isinstance(record, DirectoryUser)
    raw = json.loads(record.raw_json)
    assert raw["objectGUID;base64"] == ["AAECAwQFBgcICQoLDA0ODw=="]
    assert raw["jpegPhoto;base64"] == ["/9j/"]
    assert raw["mail"] == ["a@x.io"]


def test_hash_changes_with_any_attribute_and_with_state() -> None:
    base = {"mail": [b"a@x.io"], "cn": [b"A"]}
    decoded = decode_attributes(base)
    one = map_user("1", "uid=a", True, decoded, AttributeMapping())
    two = map_user("1", "uid=a", False, decoded, AttributeMapping())
    three = user({**base, "description": [b"new"]})
    assert isinstance(one, DirectoryUser) and isinstance(two, DirectoryUser)
    assert isinstance(three, DirectoryUser)
    assert len({one.content_hash, two.content_hash, three.content_hash}) == 3


def test_group_mapping_and_members_not_in_raw() -> None:
    decoded = decode_attributes({"cn": [b"eng"], "description": [b"Engineers"], "member": [b"uid=a,dc=x"]})
    group = map_group("g1", "cn=eng,dc=x", decoded, ("uid=a,dc=x",), AttributeMapping())
    assert (group.name, group.description) == ("eng", "Engineers")
    assert "member" not in json.loads(group.raw_json)
    assert group.member_refs == ("uid=a,dc=x",)


def test_dn_normalization() -> None:
    assert normalize_dn("UID=Ada, OU=People , DC=Example,DC=com") == "uid=ada,ou=people,dc=example,dc=com"
