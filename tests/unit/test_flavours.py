import uuid

from roster.connectors.ldap.active_directory import ACTIVE_DIRECTORY, UserAccountControl, guid_to_str
from roster.connectors.ldap.openldap import OPENLDAP


def test_object_guid_uses_the_little_endian_layout() -> None:
    # objectGUID as AD returns it for {01020304-0506-0708-090a-0b0c0d0e0f10}
    raw = bytes.fromhex("04030201060508070" + "90a0b0c0d0e0f10")
    assert guid_to_str(raw) == "01020304-0506-0708-090a-0b0c0d0e0f10"
    assert guid_to_str(raw) == str(uuid.UUID(bytes_le=raw))


def test_ad_identity_and_disabled_flag() -> None:
    guid = uuid.uuid4()
    entry = {
        "objectClass": [b"top", b"person", b"organizationalPerson", b"user"],
        "objectGUID": [guid.bytes_le],
        "userAccountControl": [
            str(int(UserAccountControl.NORMAL_ACCOUNT | UserAccountControl.ACCOUNTDISABLE)).encode()
        ],
    }
    assert ACTIVE_DIRECTORY.classify(entry) == "user"
    assert ACTIVE_DIRECTORY.identity("cn=x", entry) == str(guid)
    assert ACTIVE_DIRECTORY.is_active(entry, 0) is False
    entry["userAccountControl"] = [b"512"]
    assert ACTIVE_DIRECTORY.is_active(entry, 0) is True


def test_ad_computers_are_not_users() -> None:
    entry = {"objectClass": [b"top", b"person", b"user", b"computer"]}
    assert ACTIVE_DIRECTORY.classify(entry) is None
    assert ACTIVE_DIRECTORY.classify({"objectClass": [b"top", b"group"]}) == "group"


def test_openldap_disabled_conventions() -> None:
    today = 20000
    assert OPENLDAP.is_active({"shadowExpire": [b"1"]}, today) is False
    assert OPENLDAP.is_active({"shadowExpire": [b"30000"]}, today) is True
    assert OPENLDAP.is_active({"shadowExpire": [b"-1"]}, today) is True
    assert OPENLDAP.is_active({"pwdAccountLockedTime": [b"000001010000Z"]}, today) is False
    assert OPENLDAP.is_active({}, today) is True


def test_openldap_classification_and_identity() -> None:
    assert OPENLDAP.classify({"objectClass": [b"inetOrgPerson"]}) == "user"
    assert OPENLDAP.classify({"objectClass": [b"groupOfUniqueNames"]}) == "group"
    assert OPENLDAP.classify({"objectClass": [b"organizationalUnit"]}) is None
    assert OPENLDAP.identity("x", {"entryUUID": [b"ABC-1"]}) == "abc-1"
