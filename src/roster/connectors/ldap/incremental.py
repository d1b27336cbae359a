"""Incremental reads: detect what changed, then re-read those objects in full.

Every changed object arrives whole (a group with all its members, ranged reads
included), together with the groups that list it (``member_of``), so the pure
``reconcile_delta`` can recompute its memberships exactly as a full read would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from roster.connectors.base import Progress
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.detectors import DETECTORS, naming_context
from roster.domain.delta import Delta
from roster.domain.mapping import normalize_dn
from roster.domain.snapshot import SnapshotBuilder

if TYPE_CHECKING:
    from roster.connectors.ldap.connector import LdapConnector

BATCH = 100


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _structural(dn: str, attrs: dict[str, list[bytes]], base: str) -> bool:
    classes = {v.decode("ascii", "replace").lower() for v in attrs.get("objectClass", [])}
    if not classes & {"organizationalunit", "container"}:
        return False
    key = normalize_dn(dn)
    system = "cn=system," + normalize_dn(base)
    return not (key == system or key.endswith("," + system))  # AD's own bookkeeping lives there


def _inside(dn: str, roots: list[str]) -> bool:
    key = normalize_dn(dn)
    return any(key == r or key.endswith("," + r) for r in roots)


def read_changes(
    connector: LdapConnector,
    cursor_text: str,
    known: Callable[[], frozenset[str]],
    progress: Progress | None,
) -> Delta | None:
    from roster.connectors.ldap.connector import _collect_members, _member_dn

    cfg, flavour = connector.config, connector.flavour
    try:
        cursor: dict[str, Any] = json.loads(cursor_text)
    except ValueError:
        return None
    detector = DETECTORS.get(str(cursor.get("kind")))
    if detector is None or detector.kind not in flavour.detectors:
        return None
    if cfg.change_detection not in ("auto", detector.kind):
        return None  # the directory was set to another method since
    root_dns = [r.dn for r in cfg.roots]
    roots = [normalize_dn(r) for r in root_dns]
    base = cursor.get("nc") or cursor.get("base")
    now = time.time()
    with LdapClient(cfg) as client:
        if not base or naming_context(client, root_dns) != base:
            return None  # the search paths moved to another naming context
        detected = detector.detect(client, cursor, flavour, cfg)
        if detected is None:
            return None
        removed = set(detected.deleted)
        if detected.present is not None:
            removed |= known() - detected.present - detected.changed
        wanted = sorted(detected.changed - removed)
        context = flavour.read_context(client)
        today = int(now // 86400)
        member_attrs = {a.lower(): a for a in flavour.member_attributes}
        attributes = connector._attributes()
        if flavour.member_of_attribute:
            attributes += (flavour.member_of_attribute,)
        builder = SnapshotBuilder()
        member_of: dict[str, list[str]] = {}
        found: set[str] = set()
        groups = []
        for batch in _batches(wanted):
            query = "(|" + "".join(flavour.identity_filter(e) for e in batch) + ")"
            for dn, attrs in client.paged_search(base, query, attributes):
                if _structural(dn, attrs, base):
                    return None  # an OU or container was renamed or moved: only a full run can tell
                kind, ext = flavour.classify(attrs), flavour.identity(dn, attrs)
                if kind is None or ext is None:
                    continue
                found.add(ext)
                if not _inside(dn, roots):
                    removed.add(ext)  # moved out of the search paths
                    continue
                parents = member_of.setdefault(ext, [])
                if flavour.member_of_attribute:
                    for key, values in attrs.items():
                        name, _, option = key.lower().partition(";range=")
                        if name == flavour.member_of_attribute.lower():
                            parents.extend(_member_dn(v) for v in values)
                            high = option.split("-", 1)[1] if option else "*"
                            if high != "*":  # a user in more than 1,500 groups
                                more = client.read_ranged(dn, flavour.member_of_attribute, int(high) + 1)
                                parents.extend(_member_dn(v) for v in more)
                if kind == "user":
                    connector._add_user(builder, ext, dn, attrs, now, today, context)
                else:
                    groups.append((_collect_members(ext, dn, attrs, member_attrs), attrs))
            if progress is not None:
                progress(len(found))
        removed |= set(wanted) - found  # gone between detection and the re-read
        for group, attrs in groups:
            for attribute, start in group.more:
                group.members.extend(_member_dn(v) for v in client.read_ranged(group.dn, attribute, start))
            primary = flavour.primary_members_filter(attrs)
            if primary is not None:
                for root in root_dns:
                    group.members.extend(
                        normalize_dn(dn) for dn, _ in client.paged_search(root, primary, ["1.1"])
                    )
            connector._add_group(builder, group)
        for user_ext, key in builder.primary_groups:
            group_query = flavour.primary_group_filter(key)
            if group_query is not None:
                member_of[user_ext].extend(
                    normalize_dn(dn) for dn, _ in client.paged_search(base, group_query, ["1.1"])
                )
        if flavour.member_of_attribute is None:
            _search_parents(client, root_dns, member_of, {**builder.users, **builder.groups}, member_attrs)
    return Delta(
        cursor=json.dumps(detected.cursor),
        users=builder.users,
        groups=builder.groups,
        member_of={ext: tuple(dns) for ext, dns in member_of.items()},
        removed=frozenset(removed),
        skipped=tuple(builder.skipped.values()),
    )


def _search_parents(
    client: LdapClient,
    roots: list[str],
    member_of: dict[str, list[str]],
    records: dict[str, Any],
    member_attrs: dict[str, str],
) -> None:
    """Servers without a memberOf back-link: find the groups listing each changed object."""
    from ldap.filter import escape_filter_chars

    for ext, record in records.items():
        value = escape_filter_chars(record.dn)
        query = "(|" + "".join(f"({a}={value})" for a in member_attrs.values()) + ")"
        for root in roots:
            member_of[ext].extend(normalize_dn(dn) for dn, _ in client.paged_search(root, query, ["1.1"]))
