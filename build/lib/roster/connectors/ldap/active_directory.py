"""Microsoft Active Directory: user/group classes, objectGUID identity, account state, primary groups."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntFlag

from roster.connectors.ldap.flavours import (
    Context,
    EntryReader,
    Kind,
    RawEntry,
    first_value,
    int_value,
    object_classes,
)

FILETIME_EPOCH_OFFSET = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01
NEVER = 0x7FFFFFFFFFFFFFFF


class UserAccountControl(IntFlag):
    """Bits of ``userAccountControl`` and ``msDS-User-Account-Control-Computed`` (MS-ADTS 2.2.16)."""

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


def sid_to_str(raw: bytes) -> str:
    """A binary SID (MS-DTYP 2.4.2) as ``S-1-5-21-...``."""
    if len(raw) < 8:
        raise ValueError("SID too short")
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    if len(raw) != 8 + 4 * count:
        raise ValueError("SID length does not match its sub-authority count")
    subs = struct.unpack(f"<{count}I", raw[8:])
    return "S-" + "-".join(str(p) for p in (revision, authority, *subs))


def str_to_sid(text: str) -> bytes:
    """``S-1-5-21-...`` back to its binary form."""
    parts = text.split("-")
    if len(parts) < 3 or parts[0] != "S":
        raise ValueError(f"not a SID: {text!r}")
    revision, authority, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    return bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


def escape_bytes(raw: bytes) -> str:
    """Binary value for an LDAP filter (RFC 4515): every byte as \\xx."""
    return "".join(f"\\{b:02x}" for b in raw)


def filetime(now: float) -> int:
    return int((now + FILETIME_EPOCH_OFFSET) * 10_000_000)


def _sid(entry: RawEntry) -> str | None:
    value = first_value(entry, "objectSid")
    if value is None:
        return None
    try:
        return sid_to_str(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class ActiveDirectory:
    name: str = "active_directory"
    search_filter: str = "(|(&(objectCategory=person)(objectClass=user))(objectClass=group))"
    attributes: tuple[str, ...] = ("*", "msDS-User-Account-Control-Computed")
    binary_attributes: frozenset[str] = frozenset(
        {
            "objectguid",
            "objectsid",
            "thumbnailphoto",
            "jpegphoto",
            "usercertificate",
            "msexchmailboxguid",
            "sidhistory",
            "logonhours",
            "msds-generationid",
        }
    )
    member_attributes: tuple[str, ...] = ("member",)
    volatile_attributes: frozenset[str] = frozenset(
        {
            "lastlogon",
            "lastlogontimestamp",
            "lastlogoff",
            "logoncount",
            "badpwdcount",
            "badpasswordtime",
            "usnchanged",
            "usncreated",
            "whenchanged",
            "dscorepropagationdata",
            "memberof",
            "lockouttime",
            "pwdlastset",
            "msds-user-account-control-computed",
            "replpropertymetadata",
            "msds-lastsuccessfulinteractivelogontime",
            "msds-lastfailedinteractivelogontime",
            "msds-failedinteractivelogoncount",
            "msds-failedinteractivelogoncountatlastsuccessfullogon",
            "msds-supportedencryptiontypes",
            "msds-keyversionnumber",
        }
    )

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
        flags = UserAccountControl(int_value(entry, "userAccountControl") & 0x7FFFFFFF)
        return UserAccountControl.ACCOUNTDISABLE not in flags

    def read_context(self, reader: EntryReader) -> Context:
        root = reader.read("", ["defaultNamingContext"]) or {}
        naming = (root.get("defaultNamingContext") or [b""])[0].decode()
        domain = reader.read(naming, ["lockoutDuration"]) if naming else None
        raw = int_value(domain or {}, "lockoutDuration")
        # Stored negative, in 100 ns; 0 or the smallest value mean "until an administrator unlocks".
        duration = None if raw in (0, -(2**63)) else abs(raw)
        return {"lockout_duration": duration}

    def user_status(self, entry: RawEntry, now: float, context: Context) -> dict[str, object]:
        uac = UserAccountControl(int_value(entry, "userAccountControl") & 0x7FFFFFFF)
        computed = UserAccountControl(int_value(entry, "msDS-User-Account-Control-Computed") & 0x7FFFFFFF)
        now_ft = filetime(now)
        lockout_time = int_value(entry, "lockoutTime")
        duration = context.get("lockout_duration")
        locked = UserAccountControl.LOCKOUT in computed or (
            lockout_time > 0 and (duration is None or lockout_time + duration > now_ft)
        )
        must_change = (
            first_value(entry, "pwdLastSet") == b"0" and UserAccountControl.DONT_EXPIRE_PASSWORD not in uac
        )
        expires = int_value(entry, "accountExpires")
        return {
            "locked": locked,
            "password_expired": UserAccountControl.PASSWORD_EXPIRED in computed or must_change,
            "must_change_password": must_change,
            "account_expired": 0 < expires < NEVER and expires < now_ft,
            "user_account_control": [f.name for f in UserAccountControl if f in uac | computed],
            "object_sid": _sid(entry),
        }

    def primary_group(self, entry: RawEntry) -> str | None:
        sid, rid = _sid(entry), int_value(entry, "primaryGroupID")
        if sid is None or not rid:
            return None
        return sid.rsplit("-", 1)[0] + f"-{rid}"

    def group_key(self, entry: RawEntry) -> str | None:
        return _sid(entry)

    def is_foreign(self, normalized_dn: str) -> bool:
        return ",cn=foreignsecurityprincipals," in normalized_dn

    detectors: tuple[str, ...] = ("dirsync", "usn")
    member_of_attribute: str | None = "memberOf"  # a back-link AD maintains (primary group excluded)

    def identity_filter(self, ext: str) -> str:
        return f"(objectGUID={escape_bytes(uuid.UUID(ext).bytes_le)})"

    def primary_members_filter(self, group_entry: RawEntry) -> str | None:
        sid = _sid(group_entry)
        if sid is None:
            return None
        rid = sid.rsplit("-", 1)[1]
        return f"(&(objectCategory=person)(objectClass=user)(primaryGroupID={rid}))"

    def primary_group_filter(self, key: str) -> str | None:
        try:
            return f"(objectSid={escape_bytes(str_to_sid(key))})"
        except ValueError:
            return None


ACTIVE_DIRECTORY = ActiveDirectory()
