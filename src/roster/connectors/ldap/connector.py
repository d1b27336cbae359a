"""The LDAP connector: every search path, paged, decoded into frozen records."""

from __future__ import annotations

import gc
import time

from roster.connectors.base import (
    ConnectionReport,
    ConnectorError,
    FailureReason,
    PathCheck,
    Progress,
)
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.flavours import Flavour, get_flavour
from roster.domain.mapping import decode_attributes, map_group, map_user, normalize_dn
from roster.domain.records import Skipped, Snapshot
from roster.domain.snapshot import SnapshotBuilder

_PROGRESS_EVERY = 500


class LdapConnector:
    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.flavour: Flavour = get_flavour(config.flavour)

    def snapshot(self, progress: Progress | None = None) -> Snapshot:
        cfg, flavour = self.config, self.flavour
        builder = SnapshotBuilder()
        today = int(time.time() // 86400)
        member_attrs = tuple(a.lower() for a in flavour.member_attributes)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # decoding allocates many small objects that are never cyclic
        try:
            with LdapClient(cfg) as client:
                for root in cfg.roots:
                    if not client.base_exists(root.dn):
                        raise ConnectorError(
                            FailureReason.NO_SUCH_PATH,
                            f"search path {str(root)!r} does not exist on {cfg.url}",
                        )
                    entries = client.paged_search(root.dn, flavour.search_filter, flavour.attributes)
                    for dn, attrs in entries:
                        kind = flavour.classify(attrs)
                        if kind is None:
                            continue
                        ext = flavour.identity(dn, attrs)
                        if ext is None:
                            builder.add_skipped(Skipped(dn, dn, "entry has no stable identifier"))
                            continue
                        if kind == "user":
                            decoded = decode_attributes(attrs, flavour.binary_attributes)
                            active = flavour.is_active(attrs, today)
                            record = map_user(ext, dn, active, decoded, cfg.mapping)
                            if isinstance(record, Skipped):
                                builder.add_skipped(record)
                            else:
                                builder.add_user(record)
                        else:
                            members: list[str] = []
                            for key, values in attrs.items():
                                if key.lower() in member_attrs:
                                    members.extend(_member_dn(v) for v in values)
                            decoded = decode_attributes(attrs, flavour.binary_attributes)
                            builder.add_group(map_group(ext, dn, decoded, tuple(members), cfg.mapping))
                        if progress is not None and len(builder) % _PROGRESS_EVERY == 0:
                            progress(len(builder))
            if progress is not None:
                progress(len(builder))
            return builder.build()
        finally:
            if gc_was_enabled:
                gc.enable()

    def test(self) -> ConnectionReport:
        cfg = self.config
        try:
            with LdapClient(cfg) as client:
                checks = tuple(
                    PathCheck(
                        str(root),
                        ok := client.base_exists(root.dn),
                        "found" if ok else "does not exist",
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


def _member_dn(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    # groupOfUniqueNames members may carry an optional "#'bits'B" unique identifier
    if "#" in text and text.endswith("'B"):
        text = text.rsplit("#", 1)[0]
    return normalize_dn(text)
