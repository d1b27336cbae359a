"""Microsoft Active Directory: user/group classes, objectGUID identity, userAccountControl."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import IntFlag

from roster.connectors.ldap.flavours import Kind, RawEntry, first_value, object_classes


class UserAccountControl(IntFlag):
    """Bits of ``userAccountControl`` (MS-ADTS 2.2.16)."""

    SCRIPT = 0x0001
    ACCOUNTDISABLE = 0x0002
    HOMEDIR_REQUIRED = 0x0008
    LOCKOUT = 0x0010
    PASSWD_NOTREQD = 0x0020
    PASSWD_CANT_CHANGE = 0x0040
    ENCRYPTED_TEXT_PWD_ALLOWED = 0x0080
    TEMP_DUPLICATE_ACCOUNT = 0x0100
    NORMAL_ACCOUNT = 0x0200
    INTERDOMAIN_TRUST_ACCOUNT = 0x0800
    WORKSTATION_TRUST_ACCOUNT = 0x1000
    SERVER_TRUST_ACCOUNT = 0x2000
    DONT_EXPIRE_PASSWORD = 0x10000
    MNS_LOGON_ACCOUNT = 0x20000
    SMARTCARD_REQUIRED = 0x40000
    TRUSTED_FOR_DELEGATION = 0x80000
    NOT_DELEGATED = 0x100000
    USE_DES_KEY_ONLY = 0x200000
    DONT_REQ_PREAUTH = 0x400000
    PASSWORD_EXPIRED = 0x800000
    TRUSTED_TO_AUTH_FOR_DELEGATION = 0x1000000
    PARTIAL_SECRETS_ACCOUNT = 0x4000000


def guid_to_str(raw: bytes) -> str:
    """objectGUID bytes (little-endian GUID layout) to the canonical string form."""
    return str(uuid.UUID(bytes_le=raw))


@dataclass(frozen=True)
class ActiveDirectory:
    name: str = "active_directory"
    search_filter: str = "(|(&(objectCategory=person)(objectClass=user))(objectClass=group))"
    attributes: tuple[str, ...] = ("*",)
    binary_attributes: frozenset[str] = frozenset(
        {
            "objectguid",
            "objectsid",
            "thumbnailphoto",
            "jpegphoto",
            "usercertificate",
            "msexchmailboxguid",
        }
    )
    member_attributes: tuple[str, ...] = ("member",)

    def classify(self, entry: RawEntry) -> Kind | None:
        classes = object_classes(entry)
        if "group" in classes:
            return "group"
        if "user" in classes and "computer" not in classes:
            return "user"
        return None

    def identity(self, dn: str, entry: RawEntry) -> str | None:
        value = first_value(entry, "objectGUID")
        return guid_to_str(value) if value is not None and len(value) == 16 else None

    def is_active(self, entry: RawEntry, today: int) -> bool:
        value = first_value(entry, "userAccountControl")
        if value is None:
            return True
        try:
            flags = UserAccountControl(int(value))
        except ValueError:
            return True
        return UserAccountControl.ACCOUNTDISABLE not in flags


ACTIVE_DIRECTORY = ActiveDirectory()
