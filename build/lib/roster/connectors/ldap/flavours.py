"""What differs between directory servers, as named values rather than branches in the core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

Kind = Literal["user", "group"]
RawEntry = Mapping[str, Sequence[bytes]]
Context = Mapping[str, Any]
"""Directory-wide facts a flavour reads once per run (AD: the domain's lockout duration)."""


class EntryReader(Protocol):
    def read(self, dn: str, attributes: Sequence[str]) -> dict[str, list[bytes]] | None: ...


class Flavour(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def search_filter(self) -> str: ...
    @property
    def attributes(self) -> tuple[str, ...]: ...
    @property
    def binary_attributes(self) -> frozenset[str]: ...
    @property
    def member_attributes(self) -> tuple[str, ...]: ...
    @property
    def volatile_attributes(self) -> frozenset[str]:
        """Lower-case names left out of raw attributes: they change without the person changing."""
        ...

    def classify(self, entry: RawEntry) -> Kind | None: ...

    def identity(self, dn: str, entry: RawEntry) -> str | None: ...

    def is_active(self, entry: RawEntry, today: int) -> bool:
        """``today`` is days since 1970-01-01 (for shadowExpire-style attributes)."""
        ...

    def read_context(self, reader: EntryReader) -> Context: ...

    def user_status(self, entry: RawEntry, now: float, context: Context) -> dict[str, object]:
        """Vendor state shown in ``custom_attributes`` (lockout, password expiry, flags)."""
        ...

    def primary_group(self, entry: RawEntry) -> str | None:
        """The key of a group the user belongs to without being listed in it."""
        ...

    def group_key(self, entry: RawEntry) -> str | None: ...

    def is_foreign(self, normalized_dn: str) -> bool: ...

    # Incremental runs
    @property
    def detectors(self) -> tuple[str, ...]:
        """Change detectors this kind of server supports, preferred first (see detectors.py)."""
        ...

    @property
    def member_of_attribute(self) -> str | None:
        """An attribute listing the groups an entry belongs to, when the server keeps one reliably."""
        ...

    def identity_filter(self, ext: str) -> str:
        """An LDAP filter matching the entry with this external id."""
        ...

    def primary_members_filter(self, group_entry: RawEntry) -> str | None:
        """A filter for users whose primary group this is (members the group does not list)."""
        ...

    def primary_group_filter(self, key: str) -> str | None:
        """A filter for the group a ``primary_group`` key names."""
        ...


def object_classes(entry: RawEntry) -> set[str]:
    values = entry.get("objectClass") or entry.get("objectclass") or ()
    return {v.decode("ascii", "replace").lower() for v in values}


def first_value(entry: RawEntry, name: str) -> bytes | None:
    values = entry.get(name)
    if values is None:
        lname = name.lower()
        for key, vals in entry.items():
            if key.lower() == lname:
                values = vals
                break
    return values[0] if values else None


def int_value(entry: RawEntry, name: str, default: int = 0) -> int:
    value = first_value(entry, name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
