"""OpenLDAP and other RFC 4519 directories: inetOrgPerson, groupOfNames, entryUUID.

Disabled accounts: an OpenLDAP directory has no single standard flag, so a user
counts as inactive when either of the two common conventions says so:
``pwdAccountLockedTime`` is set (the ppolicy overlay's lock), or
``shadowExpire`` (RFC 2307 shadowAccount, days since 1970) lies in the past.
"""

from __future__ import annotations

from dataclasses import dataclass

from ldap.filter import escape_filter_chars

from roster.connectors.ldap.flavours import Context, EntryReader, Kind, RawEntry, first_value, object_classes

_USER_CLASSES = frozenset({"inetorgperson"})
_GROUP_CLASSES = frozenset({"groupofnames", "groupofuniquenames"})


@dataclass(frozen=True)
class OpenLdap:
    name: str = "ldap"
    search_filter: str = (
        "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    )
    attributes: tuple[str, ...] = ("*", "entryUUID", "pwdAccountLockedTime")
    binary_attributes: frozenset[str] = frozenset({"jpegphoto", "usercertificate;binary"})
    member_attributes: tuple[str, ...] = ("member", "uniqueMember")
    volatile_attributes: frozenset[str] = frozenset(
        {
            "memberof",
            "pwdaccountlockedtime",
            "pwdchangedtime",
            "pwdfailuretime",
            "pwdgraceusetime",
            "authtimestamp",
            "shadowlastchange",
            "modifytimestamp",
            "entrycsn",
            "modifiersname",
        }
    )

    def classify(self, entry: RawEntry) -> Kind | None:
        classes = object_classes(entry)
        if classes & _USER_CLASSES:
            return "user"
        if classes & _GROUP_CLASSES:
            return "group"
        return None

    def identity(self, dn: str, entry: RawEntry) -> str | None:
        value = first_value(entry, "entryUUID")
        return value.decode("ascii").lower() if value else None

    def is_active(self, entry: RawEntry, today: int) -> bool:
        if first_value(entry, "pwdAccountLockedTime"):
            return False
        expire = first_value(entry, "shadowExpire")
        if expire is not None:
            try:
                days = int(expire)
            except ValueError:
                return True
            if 0 <= days <= today:
                return False
        return True

    def read_context(self, reader: EntryReader) -> Context:
        return {}

    def user_status(self, entry: RawEntry, now: float, context: Context) -> dict[str, object]:
        return {}

    def primary_group(self, entry: RawEntry) -> str | None:
        return None

    def group_key(self, entry: RawEntry) -> str | None:
        return None

    def is_foreign(self, normalized_dn: str) -> bool:
        return False

    detectors: tuple[str, ...] = ("syncrepl",)
    member_of_attribute: str | None = None  # memberOf needs an overlay; groups are searched instead

    def identity_filter(self, ext: str) -> str:
        return f"(entryUUID={escape_filter_chars(ext)})"

    def primary_members_filter(self, group_entry: RawEntry) -> str | None:
        return None

    def primary_group_filter(self, key: str) -> str | None:
        return None


OPENLDAP = OpenLdap()
