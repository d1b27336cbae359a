"""One decoder of LDAP entries, shared by full and incremental reads.

It turns raw entries into frozen records: users (with their fingerprint, so that a full read
can skip an entry exactly as cached), groups (member values normalized, ranged members
completed by the caller) and their vendor keys (AD: a group's SID, a user's primary group).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from roster.connectors.ldap.client import RawAttrs
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.flavours import Context, Flavour
from roster.connectors.ldap.vendors import get_flavour
from roster.domain.dn import normalize_dn
from roster.domain.mapping import MAPPING_VERSION, SECRET_ATTRIBUTES, decode_attributes, map_group, map_user
from roster.domain.records import Skipped
from roster.domain.snapshot import SnapshotBuilder


@dataclass
class PartialGroup:
    """A group as read: its members so far, and the ranged attributes still to read."""

    ext: str
    dn: str
    attrs: RawAttrs
    members: list[str]
    more: list[tuple[str, int]]  # (attribute, next index) still to read


@dataclass(frozen=True)
class ReadClock:
    """The time a read decodes against (account expiry, lockouts)."""

    now: float

    @property
    def today(self) -> int:
        return int(self.now // 86400)


class EntryDecoder:
    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.flavour: Flavour = get_flavour(config.flavour)
        self.member_attrs = {a.lower(): a for a in self.flavour.member_attributes}
        self._exclude = self.flavour.volatile_attributes
        self._seen: set[str] = set()  # attribute names as the server spells them
        self._dropped: set[str] = set()  # those left out of fingerprints (secret or volatile)
        self._mapping_key = repr((MAPPING_VERSION, config.flavour, config.mapping))
        self._memo: dict[bytes, str] = {}  # member values already normalized during this read

    def attributes(self) -> tuple[str, ...]:
        attrs = self.flavour.attributes
        size = self.config.member_range_size
        if size:
            attrs += tuple(f"{a};range=0-{size - 1}" for a in self.flavour.member_attributes)
        return attrs

    def add_user(
        self,
        builder: SnapshotBuilder,
        entry: tuple[str, str, RawAttrs],
        clock: ReadClock,
        context: Context,
        previous: Mapping[str, str] | None = None,
    ) -> None:
        """Decode a user entry (ext, dn, attrs) into ``builder``; one whose fingerprint equals
        ``previous[ext]`` is recorded as unchanged without being decoded."""
        ext, dn, attrs = entry
        flavour = self.flavour
        status = flavour.user_status(attrs, clock.now, context)
        active = flavour.is_active(attrs, clock.today)
        fingerprint = self._fingerprint(dn, attrs, active, status)
        if previous is not None and previous.get(ext) == fingerprint:
            builder.add_unchanged_user(ext, dn, fingerprint)
        else:
            decoded = decode_attributes(attrs, flavour.binary_attributes, self._exclude)
            record = map_user(ext, dn, active, decoded, self.config.mapping, status, fingerprint)
            if isinstance(record, Skipped):
                builder.add_skipped(record)
                return
            builder.add_user(record)
        primary = flavour.primary_group(attrs)
        if primary is not None:
            builder.add_primary_group(ext, primary)

    def _fingerprint(self, dn: str, attrs: RawAttrs, active: bool, status: Mapping[str, object]) -> str:
        """Everything a user's record is made of, as read: the entry's attributes except the
        secret and volatile ones, the computed state, the mapping and the mapping code's version."""
        new = attrs.keys() - self._seen
        if new:
            self._seen |= new
            for name in new:
                base = name.lower().split(";", 1)[0]
                if base in SECRET_ATTRIBUTES or base in self._exclude:
                    self._dropped.add(name)
        if not self._dropped.isdisjoint(attrs):
            attrs = {k: v for k, v in attrs.items() if k not in self._dropped}
        text = repr((self._mapping_key, dn, active, status, attrs))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def add_group(self, builder: SnapshotBuilder, group: PartialGroup) -> None:
        decoded = decode_attributes(group.attrs, self.flavour.binary_attributes, self._exclude)
        builder.add_group(map_group(group.ext, group.dn, decoded, tuple(group.members), self.config.mapping))
        key = self.flavour.group_key(group.attrs)
        if key is not None:
            builder.set_group_key(group.ext, key)

    def collect_members(self, ext: str, dn: str, attrs: RawAttrs) -> PartialGroup:
        """A group's member values, normalized (a user is in many groups: the memo also makes every
        group share one string per member), and the ranges still to read."""
        members: list[str] = []
        more: list[tuple[str, int]] = []
        memo = self._memo
        for key, values in attrs.items():
            name, _, option = key.lower().partition(";range=")
            if name not in self.member_attrs:
                continue
            for v in values:
                found = memo.get(v)
                if found is None:
                    found = memo[v] = member_dn(v)
                members.append(found)
            if option:
                high = option.split("-", 1)[1]
                if high != "*":
                    more.append((self.member_attrs[name], int(high) + 1))
        return PartialGroup(ext, dn, attrs, members, more)


def member_dn(value: bytes) -> str:
    """A member value as a reference key (the normalized DN)."""
    text = value.decode("utf-8", "replace")
    # groupOfUniqueNames members may carry an optional "#'bits'B" unique identifier
    if "#" in text and text.endswith("'B"):
        text = text.rsplit("#", 1)[0]
    return normalize_dn(text)
