"""Frozen, normalized directory records: what connectors yield and reconcile reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import overload

from roster.domain.dn import normalize_dn


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """One person as the directory describes them, normalized.

    ``external_id`` is the directory's own stable id (``entryUUID``,
    ``objectGUID``, a Graph or SCIM ``id``...), never the DN. ``dn`` is set only
    where the source has DNs (LDAP). ``raw_json`` is every raw attribute as
    canonical JSON (binary values base64 under ``"<attr>;base64"``), kept as one
    string so that the state held per object stays small.
    """

    external_id: str
    dn: str | None
    email: str | None
    name: str | None
    first_name: str | None
    last_name: str | None
    username: str | None
    job_title: str | None
    phone: str | None
    active: bool
    raw_json: str
    content_hash: str
    custom_json: str = "{}"  # vendor state worth showing (AD: locked, password_expired, flags...)
    # a fingerprint of the entry as read (see Snapshot.unchanged); None: not computed
    source_hash: str | None = None


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    """One group, normalized.

    ``member_refs`` are the members' references (``ref_key``): normalized DNs for LDAP,
    external ids for sources without DNs. ``None``: this record does not carry the
    member list (a delta that changes members by operations, or not at all)."""

    external_id: str
    dn: str | None
    name: str
    description: str | None
    raw_json: str
    content_hash: str
    member_refs: tuple[str, ...] | None = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry that was read but not provisioned, with the reason."""

    external_id: str
    dn: str | None
    reason: str


class KeyedRecords(Sequence[DirectoryUser]):
    """The users of ``keys``, read from ``records`` when asked for: a change set names the users a
    run creates without holding them (a spooled read keeps them in a file until they are written).
    Equal to any sequence of the same users in the same order."""

    __slots__ = ("_records", "keys")

    def __init__(self, records: Mapping[str, DirectoryUser], keys: tuple[str, ...]) -> None:
        self._records = records
        self.keys = keys

    @classmethod
    def of(cls, users: Iterable[DirectoryUser]) -> KeyedRecords:
        if isinstance(users, KeyedRecords):
            return users
        held = {u.external_id: u for u in users}
        return cls(held, tuple(held))

    @overload
    def __getitem__(self, index: int) -> DirectoryUser: ...
    @overload
    def __getitem__(self, index: slice) -> list[DirectoryUser]: ...
    def __getitem__(self, index: int | slice) -> DirectoryUser | list[DirectoryUser]:
        if isinstance(index, slice):
            return [self._records[k] for k in self.keys[index]]
        return self._records[self.keys[index]]

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[DirectoryUser]:
        return (self._records[k] for k in self.keys)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.keys)

    def __repr__(self) -> str:
        return f"KeyedRecords({list(self.keys)!r})"


NO_USERS = KeyedRecords({}, ())


def ref_key(external_id: str, dn: str | None) -> str:
    """How members name an object: its normalized DN where the source has DNs, else its id."""
    return normalize_dn(dn) if dn else external_id


@dataclass(frozen=True)
class Snapshot:
    """A complete read of a directory.

    ``memberships`` holds ``(group external id, member external id)`` pairs whose
    member is a user or a group of this snapshot (any set; readers build a
    ``PairRuns``, which holds a million pairs in a tenth of a set's memory).
    """

    users: Mapping[str, DirectoryUser]
    groups: Mapping[str, DirectoryGroup]
    memberships: AbstractSet[tuple[str, str]]
    skipped: tuple[Skipped, ...] = ()
    ignored_members: int = 0  # member values naming nothing inside the search paths
    foreign_members: int = 0  # foreign security principals (members from other domains)
    cursor: str | None = None  # where an incremental run can continue from (taken before the read)
    # Users whose entry's fingerprint equals the cached one (external id -> fingerprint): the read
    # skipped decoding them, and the cache already holds exactly what they would map to.
    unchanged: Mapping[str, str] = field(default_factory=dict)
    # group external id -> digest of its member set (``members_digest``); empty: not computed
    member_digests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CachedUser:
    roster_id: str
    external_id: str
    content_hash: str
    active: bool
    present: bool
    source_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CachedGroup:
    roster_id: str
    external_id: str
    content_hash: str
    members_hash: str | None = None  # digest of its stored member set (None: not known)


@dataclass(frozen=True)
class CachedState:
    """What the store holds for one directory: ids and hashes, not whole entries."""

    users: Mapping[str, CachedUser] = field(default_factory=dict)
    groups: Mapping[str, CachedGroup] = field(default_factory=dict)
    memberships: frozenset[tuple[str, str]] = frozenset()
    # Set when ``users`` holds only some users (an incremental run): how many are active in all
    active_total: int | None = None
    # Set when ``memberships`` holds only the memberships of these groups (the others are known
    # to be unchanged: their member digests match)
    membership_groups: frozenset[str] | None = None

    @property
    def active_users(self) -> int:
        if self.active_total is not None:
            return self.active_total
        return sum(1 for u in self.users.values() if u.active and u.present)
