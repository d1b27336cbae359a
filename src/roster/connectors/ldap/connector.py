"""The LDAP connector: every search path, paged, decoded into frozen records.

Large groups: Active Directory returns at most 1,500 values of ``member`` per
read (``member;range=0-1499``); the rest is fetched range by range after the
paged search, so every member arrives. ``member_range_size`` asks for ranges
explicitly, which makes servers that do not truncate (Samba) behave the same.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Mapping
from dataclasses import replace

from roster.connectors.base import (
    ConnectionReport,
    ConnectorError,
    FailureReason,
    PathCheck,
    Progress,
)
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.detectors import start_cursor
from roster.connectors.ldap.entries import EntryDecoder, PartialGroup, ReadClock, member_dn
from roster.connectors.ldap.incremental import read_changes
from roster.connectors.ldap.vendors import get_flavour
from roster.connectors.spool import UserSpool
from roster.domain.delta import Delta
from roster.domain.records import Skipped, Snapshot
from roster.domain.snapshot import SnapshotBuilder

_PROGRESS_EVERY = 500


class LdapConnector:
    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.flavour = get_flavour(config.flavour)

    def snapshot(
        self, progress: Progress | None = None, previous: Mapping[str, str] | None = None
    ) -> Snapshot:
        gc_was_enabled = gc.isenabled()
        gc.disable()  # decoding allocates many small objects that are never cyclic
        try:
            return self._snapshot(progress, previous)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _snapshot(self, progress: Progress | None, previous: Mapping[str, str] | None) -> Snapshot:
        cfg, flavour = self.config, self.flavour
        decoder = EntryDecoder(cfg)
        builder = SnapshotBuilder(UserSpool())
        clock = ReadClock(time.time())
        attributes = decoder.attributes()
        partial: list[PartialGroup] = []
        with LdapClient(cfg) as client:
            context = flavour.read_context(client)
            cursor = start_cursor(client, flavour, [r.dn for r in cfg.roots], cfg.change_detection)
            for root in cfg.roots:
                if not client.base_exists(root.dn):
                    raise ConnectorError(
                        FailureReason.NO_SUCH_PATH, f"search path {str(root)!r} does not exist on {cfg.url}"
                    )
                for dn, attrs in client.paged_search(root.dn, flavour.search_filter, attributes):
                    kind = flavour.classify(attrs)
                    if kind is None:
                        continue
                    ext = flavour.identity(dn, attrs)
                    if ext is None:
                        builder.add_skipped(Skipped(dn, dn, "entry has no stable identifier"))
                    elif kind == "user":
                        decoder.add_user(builder, (ext, dn, attrs), clock, context, previous)
                    else:
                        group = decoder.collect_members(ext, dn, attrs)
                        if group.more:
                            partial.append(group)
                        else:
                            decoder.add_group(builder, group)
                    if progress is not None and len(builder) % _PROGRESS_EVERY == 0:
                        progress(len(builder))
            for group in partial:  # after the paged search: one active search per connection
                for attribute, start in group.more:
                    group.members.extend(member_dn(v) for v in client.read_ranged(group.dn, attribute, start))
                decoder.add_group(builder, group)
        if progress is not None:
            progress(len(builder))
        snapshot = builder.build(flavour.is_foreign)
        return replace(snapshot, cursor=json.dumps(cursor) if cursor else None)

    def changes(self, cursor: str, progress: Progress | None = None) -> Delta | None:
        """What changed since ``cursor``; None when only a full run can tell."""
        return read_changes(self.config, EntryDecoder(self.config), cursor, progress)

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
            return ConnectionReport(False, cfg.url, str(exc), reason=exc.reason)
        ok = all(c.ok for c in checks)
        detail = (
            "bind succeeded; every search path exists" if ok else "bind succeeded; a search path is missing"
        )
        return ConnectionReport(ok, cfg.url, detail, checks)
