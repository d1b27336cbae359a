"""Incremental reads: detect what changed, then re-read those objects in full.

Every changed object arrives whole (a group with all its members, ranged reads
included), together with the groups that list it (``member_of``), so the pure
``reconcile_delta`` can recompute its memberships exactly as a full read would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from roster.connectors.base import Progress
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.detectors import DETECTORS, Detected, naming_context
from roster.connectors.ldap.entries import EntryDecoder, PartialGroup, ReadClock, member_dn
from roster.connectors.ldap.flavours import RawEntry
from roster.domain.delta import Delta
from roster.domain.dn import normalize_dn
from roster.domain.snapshot import SnapshotBuilder

BATCH = 100


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _structural(dn: str, attrs: RawEntry, base: str) -> bool:
    classes = {v.decode("ascii", "replace").lower() for v in attrs.get("objectClass", [])}
    if not classes & {"organizationalunit", "container"}:
        return False
    key = normalize_dn(dn)
    system = "cn=system," + normalize_dn(base)
    return not (key == system or key.endswith("," + system))  # AD's own bookkeeping lives there


def _inside(dn: str, roots: list[str]) -> bool:
    key = normalize_dn(dn)
    return any(key == r or key.endswith("," + r) for r in roots)


class _NeedsFullRead(Exception):
    """Only a full read can tell what changed (e.g. an OU was renamed or moved)."""


@dataclass
class _Reread:
    """The objects a detector named, read again in full."""

    builder: SnapshotBuilder = field(default_factory=SnapshotBuilder)
    member_of: dict[str, list[str]] = field(default_factory=dict)
    found: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)  # moved out of the search paths
    groups: list[tuple[PartialGroup, RawEntry]] = field(default_factory=list)


def read_changes(
    cfg: LdapConfig, decoder: EntryDecoder, cursor_text: str, progress: Progress | None
) -> Delta | None:
    """What changed since ``cursor_text``, or None when only a full read can tell."""
    flavour = decoder.flavour
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
    base = cursor.get("nc") or cursor.get("base")
    with LdapClient(cfg) as client:
        if not base or naming_context(client, root_dns) != base:
            return None  # the search paths moved to another naming context
        detected = detector.detect(client, cursor, flavour, cfg)
        if detected is None:
            return None
        try:
            read = _reread(client, decoder, base, sorted(detected.changed - detected.deleted), progress)
        except _NeedsFullRead:
            return None
        _complete_memberships(client, decoder, base, root_dns, read)
    return _delta(detected, read)


def _reread(
    client: LdapClient, decoder: EntryDecoder, base: str, wanted: list[str], progress: Progress | None
) -> _Reread:
    flavour, read = decoder.flavour, _Reread()
    roots = [normalize_dn(r.dn) for r in decoder.config.roots]
    clock, context = ReadClock(time.time()), flavour.read_context(client)
    attributes = decoder.attributes()
    if flavour.member_of_attribute:
        attributes += (flavour.member_of_attribute,)
    for batch in _batches(wanted):
        query = "(|" + "".join(flavour.identity_filter(e) for e in batch) + ")"
        for dn, attrs in client.paged_search(base, query, attributes):
            if _structural(dn, attrs, base):
                raise _NeedsFullRead(dn)
            kind, ext = flavour.classify(attrs), flavour.identity(dn, attrs)
            if kind is None or ext is None:
                continue
            read.found.add(ext)
            if not _inside(dn, roots):
                read.left.add(ext)
                continue
            read.member_of[ext] = _parents(client, decoder, dn, attrs)
            if kind == "user":
                decoder.add_user(read.builder, (ext, dn, attrs), clock, context)
            else:
                read.groups.append((decoder.collect_members(ext, dn, attrs), attrs))
        if progress is not None:
            progress(len(read.found))
    read.left |= set(wanted) - read.found  # gone between detection and the re-read
    return read


def _parents(client: LdapClient, decoder: EntryDecoder, dn: str, attrs: RawEntry) -> list[str]:
    """The groups an entry's back-link (``memberOf``) names, ranged values included."""
    attribute = decoder.flavour.member_of_attribute
    parents: list[str] = []
    if not attribute:
        return parents
    for key, values in attrs.items():
        name, _, option = key.lower().partition(";range=")
        if name == attribute.lower():
            parents.extend(member_dn(v) for v in values)
            high = option.split("-", 1)[1] if option else "*"
            if high != "*":  # a user in more than 1,500 groups
                parents.extend(member_dn(v) for v in client.read_ranged(dn, attribute, int(high) + 1))
    return parents


def _complete_memberships(
    client: LdapClient, decoder: EntryDecoder, base: str, root_dns: list[str], read: _Reread
) -> None:
    """Ranged members, primary-group members and parents, and (without a back-link) the groups
    that list each changed object."""
    flavour, builder = decoder.flavour, read.builder
    for group, attrs in read.groups:
        for attribute, start in group.more:
            group.members.extend(member_dn(v) for v in client.read_ranged(group.dn, attribute, start))
        primary = flavour.primary_members_filter(attrs)
        if primary is not None:
            for root in root_dns:
                group.members.extend(
                    normalize_dn(dn) for dn, _ in client.paged_search(root, primary, ["1.1"])
                )
        decoder.add_group(builder, group)
    for user_ext, key in builder.primary_groups:
        group_query = flavour.primary_group_filter(key)
        if group_query is not None:
            read.member_of[user_ext].extend(
                normalize_dn(dn) for dn, _ in client.paged_search(base, group_query, ["1.1"])
            )
    if flavour.member_of_attribute is None:
        records = {**builder.users, **builder.groups}
        _search_parents(client, root_dns, read.member_of, records, decoder.member_attrs)


def _delta(detected: Detected, read: _Reread) -> Delta:
    builder = read.builder
    return Delta(
        cursor=json.dumps(detected.cursor),
        users=builder.users,
        groups=builder.groups,
        member_of={ext: tuple(dns) for ext, dns in read.member_of.items()},
        removed=frozenset(detected.deleted | read.left),
        skipped=tuple(builder.skipped.values()),
        present=None if detected.present is None else detected.present | detected.changed,
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
