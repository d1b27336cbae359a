"""Source attributes to normalized fields, and the canonical form of raw attributes.

The default mapping follows what directory administrators expect:
``displayName`` (else ``givenName`` + ``sn``, else ``cn``) is the name, ``mail`` the
e-mail, ``telephoneNumber`` the phone, ``uid`` or ``sAMAccountName`` the
username; for groups ``displayName`` (else ``cn``) and ``description``.
A directory may override any field with an attribute of its own choosing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped

USER_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("displayname",),
    "first_name": ("givenname",),
    "last_name": ("sn",),
    "email": ("mail",),
    "phone": ("telephonenumber",),
    "username": ("uid", "samaccountname"),
    "job_title": ("title",),
}
GROUP_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("displayname", "cn"),
    "description": ("description",),
}
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class AttributeMapping:
    """Which source attributes feed each normalized field (lower-case names, in order)."""

    user: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(USER_FIELDS))
    group: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(GROUP_FIELDS))

    @classmethod
    def from_overrides(
        cls,
        user: Mapping[str, str] | None = None,
        group: Mapping[str, str] | None = None,
        defaults: AttributeMapping | None = None,
    ) -> AttributeMapping:
        """``defaults`` (the LDAP defaults unless given: a source with its own names, such as
        Microsoft Graph) with the directory's overrides."""
        base = defaults or cls()
        return cls(
            user=_override(base.user, user or {}, "user"),
            group=_override(base.group, group or {}, "group"),
        )


def _override(
    base: Mapping[str, tuple[str, ...]], overrides: Mapping[str, str], kind: str
) -> dict[str, tuple[str, ...]]:
    out = dict(base)
    for name, attribute in overrides.items():
        if name not in base:
            raise MappingError(
                f"mapping.{kind}.{name}: unknown field; known fields are {', '.join(sorted(base))}"
            )
        if not isinstance(attribute, str) or not _ATTRIBUTE_NAME.match(attribute):
            raise MappingError(f"mapping.{kind}.{name}: {attribute!r} is not an attribute name")
        out[name] = (attribute.lower(),)
    return out


# Never stored, shown or hashed, whoever the bind account is and whatever the server returns.
SECRET_ATTRIBUTES = frozenset(
    {
        "userpassword",
        "unicodepwd",
        "dbcspwd",
        "ntpwdhistory",
        "lmpwdhistory",
        "pwdhistory",
        "supplementalcredentials",
        "sambantpassword",
        "sambalmpassword",
        "sambapasswordhistory",
        "authpassword",
        "krbprincipalkey",
        "msds-managedpassword",
        "ms-mcs-admpwd",
        "mslaps-password",
        "mslaps-encryptedpassword",
        "unixuserpassword",
        "userpkcs12",
        "initialauthincoming",
        "initialauthoutgoing",
        "trustauthincoming",
        "trustauthoutgoing",
    }
)


# Part of every entry fingerprint: bump it when map_user gives a different record for the same
# entry, so that the next read decodes every user again instead of trusting the cache.
MAPPING_VERSION = 1


def decode_attributes(
    attrs: Mapping[str, Iterable[bytes]],
    binary: frozenset[str] = frozenset(),
    exclude: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """Decode raw LDAP values: UTF-8 text, else base64 under ``"<attr>;base64"``.

    ``binary`` names (lower-case) attributes that are always base64, such as ``objectguid``.
    Secret attributes and those in ``exclude`` (lower-case; volatile ones such as
    ``lastlogon`` that change without the person changing) are dropped.
    """
    out: dict[str, list[str]] = {}
    for name, values in attrs.items():
        full = name.lower()
        lname = full.split(";", 1)[0] if ";" in full else full
        if lname in SECRET_ATTRIBUTES or lname in exclude:
            continue
        if full in binary:
            out[name + ";base64"] = [base64.b64encode(v).decode() for v in values]
            continue
        try:
            out[name] = [v.decode() for v in values]
        except UnicodeDecodeError:
            out[name + ";base64"] = [base64.b64encode(v).decode() for v in values]
    return out


def canonical_json(decoded: Mapping[str, list[str]]) -> str:
    return json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(*parts: object) -> str:
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _first(lower: Mapping[str, list[str]], names: tuple[str, ...]) -> str | None:
    for name in names:
        values = lower.get(name)
        if values:
            value = values[0].strip()
            if value:
                return value
    return None


def map_user(
    external_id: str,
    dn: str | None,
    active: bool,
    decoded: Mapping[str, list[str]],
    mapping: AttributeMapping,
    custom: Mapping[str, object] | None = None,
    source_hash: str | None = None,
) -> DirectoryUser | Skipped:
    lower = {k.lower(): v for k, v in decoded.items()}
    fields = {name: _first(lower, attrs) for name, attrs in mapping.user.items()}
    email = fields["email"]
    if email is None:
        source = "/".join(mapping.user["email"])
        return Skipped(external_id, dn, f"no e-mail address (attribute {source} is empty)")
    if "@" not in email or email.startswith("@") or email.endswith("@") or " " in email:
        return Skipped(external_id, dn, f"e-mail address {email!r} is not valid")
    name = fields["name"]
    if name is None:
        given = " ".join(p for p in (fields["first_name"], fields["last_name"]) if p)
        name = given or _first(lower, ("cn",))
    raw = canonical_json(decoded)
    custom_json = json.dumps(custom, sort_keys=True, separators=(",", ":")) if custom else "{}"
    digest = content_hash(
        email,
        name,
        fields["first_name"],
        fields["last_name"],
        fields["username"],
        fields["job_title"],
        fields["phone"],
        active,
        dn,
        raw,
        custom_json,
    )
    return DirectoryUser(
        external_id=external_id,
        dn=dn,
        email=email,
        name=name,
        first_name=fields["first_name"],
        last_name=fields["last_name"],
        username=fields["username"],
        job_title=fields["job_title"],
        phone=fields["phone"],
        active=active,
        raw_json=raw,
        content_hash=digest,
        custom_json=custom_json,
        source_hash=source_hash,
    )


def map_group(
    external_id: str,
    dn: str | None,
    decoded: Mapping[str, list[str]],
    member_refs: tuple[str, ...],
    mapping: AttributeMapping,
) -> DirectoryGroup:
    lower = {k.lower(): v for k, v in decoded.items()}
    name = _first(lower, mapping.group["name"]) or _first(lower, ("cn",)) or dn or external_id
    description = _first(lower, mapping.group["description"])
    raw = canonical_json(
        {k: v for k, v in decoded.items() if k.lower().split(";", 1)[0] not in _MEMBER_ATTRIBUTES}
    )
    return DirectoryGroup(
        external_id=external_id,
        dn=dn,
        name=name,
        description=description,
        raw_json=raw,
        content_hash=content_hash(name, description, dn, raw),
        member_refs=member_refs,
    )


# Member lists are kept as memberships, not as raw attributes of the group: a
# group of 50,000 members must not be rewritten because one member changed.
_MEMBER_ATTRIBUTES = frozenset({"member", "uniquemember", "memberuid"})


def members_digest(members: Iterable[str]) -> str:
    """A digest of a group's member set (external ids), independent of reading order."""
    return hashlib.blake2b("\n".join(sorted(members)).encode(), digest_size=16).hexdigest()
