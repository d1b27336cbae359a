"""The LDAP connector: every search path, paged, decoded into frozen records.

Large groups: Active Directory returns at most 1,500 values of ``member`` per
read (``member;range=0-1499``); the rest is fetched range by range after the
paged search, so every member arrives. ``member_range_size`` asks for ranges
explicitly, which makes servers that do not truncate (Samba) behave the same.
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from roster.connectors.base import (
    ConnectionReport,
    ConnectorError,
    FailureReason,
    PathCheck,
    Progress,
)
from roster.connectors.ldap.client import LdapClient, RawAttrs
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.detectors import start_cursor
from roster.connectors.ldap.flavours import Context, Flavour, get_flavour
from roster.domain.delta import Delta
from roster.domain.mapping import (
    MAPPING_VERSION,
    SECRET_ATTRIBUTES,
    decode_attributes,
    map_group,
    map_user,
    normalize_dn,
)
from roster.domain.records import Skipped, Snapshot
from roster.domain.snapshot import SnapshotBuilder

_PROGRESS_EVERY = 500


@dataclass
class _PartialGroup:
    ext: str
    dn: str
    attrs: RawAttrs
    members: list[str]
    more: list[tuple[str, int]]  # (attribute, next index) still to read


class LdapConnector:
    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.flavour: Flavour = get_flavour(config.flavour)
        self._exclude = self.flavour.volatile_attributes
        self._seen: set[str] = set()  # attribute names as the server spells them
        self._dropped: set[str] = set()  # those left out of fingerprints (secret or volatile)
        self._mapping_key = repr((MAPPING_VERSION, config.flavour, config.mapping))

    def _attributes(self) -> tuple[str, ...]:
        attrs = self.flavour.attributes
        size = self.config.member_range_size
        if size:
            attrs += tuple(f"{a};range=0-{size - 1}" for a in self.flavour.member_attributes)
        return attrs

    def snapshot(
        self, progress: Progress | None = None, previous: Mapping[str, str] | None = None
    ) -> Snapshot:
        cfg, flavour = self.config, self.flavour
        builder = SnapshotBuilder()
        now = time.time()
        today = int(now // 86400)
        member_attrs = {a.lower(): a for a in flavour.member_attributes}
        attributes = self._attributes()
        partial: list[_PartialGroup] = []
        memo: dict[bytes, str] = {}
        gc_was_enabled = gc.isenabled()
        gc.disable()  # decoding allocates many small objects that are never cyclic
        try:
            with LdapClient(cfg) as client:
                context = flavour.read_context(client)
                cursor = start_cursor(client, flavour, [r.dn for r in cfg.roots], cfg.change_detection)
                for root in cfg.roots:
                    if not client.base_exists(root.dn):
                        raise ConnectorError(
                            FailureReason.NO_SUCH_PATH,
                            f"search path {str(root)!r} does not exist on {cfg.url}",
                        )
                    for dn, attrs in client.paged_search(root.dn, flavour.search_filter, attributes):
                        kind = flavour.classify(attrs)
                        if kind is None:
                            continue
                        ext = flavour.identity(dn, attrs)
                        if ext is None:
                            builder.add_skipped(Skipped(dn, dn, "entry has no stable identifier"))
                        elif kind == "user":
                            self._add_user(builder, ext, dn, attrs, now, today, context, previous)
                        else:
                            group = _collect_members(ext, dn, attrs, member_attrs, memo)
                            if group.more:
                                partial.append(group)
                            else:
                                self._add_group(builder, group)
                        if progress is not None and len(builder) % _PROGRESS_EVERY == 0:
                            progress(len(builder))
                for group in partial:  # after the paged search: one active search per connection
                    for attribute, start in group.more:
                        group.members.extend(
                            _member_dn(v) for v in client.read_ranged(group.dn, attribute, start)
                        )
                    self._add_group(builder, group)
            if progress is not None:
                progress(len(builder))
            snapshot = builder.build(flavour.is_foreign)
            return replace(snapshot, cursor=json.dumps(cursor) if cursor else None)
        finally:
            if gc_was_enabled:
                gc.enable()

    def changes(
        self, cursor: str, known: Callable[[], frozenset[str]], progress: Progress | None = None
    ) -> Delta | None:
        """What changed since ``cursor``; None when only a full run can tell."""
        from roster.connectors.ldap.incremental import read_changes

        return read_changes(self, cursor, known, progress)

    def _add_user(
        self,
        builder: SnapshotBuilder,
        ext: str,
        dn: str,
        attrs: RawAttrs,
        now: float,
        today: int,
        context: Context,
        previous: Mapping[str, str] | None = None,
    ) -> None:
        flavour = self.flavour
        status = flavour.user_status(attrs, now, context)
        active = flavour.is_active(attrs, today)
        fingerprint = self._fingerprint(dn, attrs, active, status)
        if previous is not None and previous.get(ext) == fingerprint:
            builder.add_unchanged_user(ext, dn, fingerprint)  # as cached: no need to decode it
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

    def _add_group(self, builder: SnapshotBuilder, group: _PartialGroup) -> None:
        decoded = decode_attributes(group.attrs, self.flavour.binary_attributes, self._exclude)
        builder.add_group(map_group(group.ext, group.dn, decoded, tuple(group.members), self.config.mapping))
        key = self.flavour.group_key(group.attrs)
        if key is not None:
            builder.set_group_key(group.ext, key)

    def test(self) -> ConnectionReport:
        cfg = self.config
        try:
            with LdapClient(cfg) as client:
                checks = tuple(
                    PathCheck(
                        str(root), ok := client.base_exists(root.dn), "found" if ok else "does not exist"
                    )
                    for root in cfg.roots
                )
        except ConnectorError as exc:
            return ConnectionReport(False, cfg.url, str(exc))
        ok = all(c.ok for c in checks)
        detail = (
            "bind succeeded; every search path exists" if ok else "bind succeeded; a search path is missing"
        )
        return ConnectionReport(ok, cfg.url, detail, checks)


def _collect_members(
    ext: str, dn: str, attrs: RawAttrs, member_attrs: dict[str, str], memo: dict[bytes, str] | None = None
) -> _PartialGroup:
    """``memo``: member values already normalized during this read (a user is in many groups; the
    memo also makes every group share one string per member)."""
    members: list[str] = []
    more: list[tuple[str, int]] = []
    for key, values in attrs.items():
        name, _, option = key.lower().partition(";range=")
        if name not in member_attrs:
            continue
        if memo is None:
            members.extend(_member_dn(v) for v in values)
        else:
            for v in values:
                found = memo.get(v)
                if found is None:
                    found = memo[v] = _member_dn(v)
                members.append(found)
        if option:
            high = option.split("-", 1)[1]
            if high != "*":
                more.append((member_attrs[name], int(high) + 1))
    return _PartialGroup(ext, dn, attrs, members, more)


def _member_dn(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    # groupOfUniqueNames members may carry an optional "#'bits'B" unique identifier
    if "#" in text and text.endswith("'B"):
        text = text.rsplit("#", 1)[0]
    return normalize_dn(text)
