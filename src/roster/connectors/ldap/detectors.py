"""Change detection for incremental runs: which objects changed or left since a cursor.

- Active Directory: the ``uSNChanged`` high-water mark of one domain controller
  (``highestCommittedUSN`` from its root DSE). Deletions come from the Deleted
  Objects container, read with the show-deleted control (1.2.840.113556.1.4.417).
  A different DC (``dsServiceName``) has its own USNs, so it forces a full run.
- OpenLDAP: RFC 4533 content synchronization (``syncrepl``, refreshOnly) against
  the ``syncprov`` overlay, starting from the naming context's ``contextCSN``.
  Deletions arrive as delete messages, or as a present phase (every live entry
  is listed; what is not listed is gone).

A detector only names objects; the connector re-reads them in full.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import ldap
from ldap.controls import LDAPControl
from ldap.ldapobject import LDAPObject
from ldap.syncrepl import SyncreplConsumer

from roster.connectors.base import ConnectorError, FailureReason
from roster.connectors.ldap.active_directory import guid_to_str
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.flavours import Flavour, first_value
from roster.domain.mapping import normalize_dn

SHOW_DELETED = "1.2.840.113556.1.4.417"

Cursor = dict[str, Any]


@dataclass(frozen=True)
class Detected:
    cursor: Cursor
    changed: frozenset[str]
    deleted: frozenset[str]
    present: frozenset[str] | None = None  # syncrepl present phase: every live id under the base


def naming_context(client: LdapClient, roots: list[str]) -> str | None:
    """The naming context holding every search root, or None when they span several."""
    root = client.read("", ["namingContexts", "defaultNamingContext"]) or {}
    contexts = [v.decode() for v in root.get("namingContexts", [])]
    keys = [normalize_dn(r) for r in roots]
    for nc in sorted(contexts, key=len, reverse=True):
        key = normalize_dn(nc)
        if key and all(k == key or k.endswith("," + key) for k in keys):
            return nc
    return None


class UsnDetector:
    kind = "usn"

    def start(self, client: LdapClient, roots: list[str]) -> Cursor | None:
        root = client.read("", ["highestCommittedUSN", "dsServiceName", "defaultNamingContext"]) or {}
        usn, dc = first_value(root, "highestCommittedUSN"), first_value(root, "dsServiceName")
        nc = naming_context(client, roots)
        if usn is None or dc is None or nc is None:
            return None
        return {"kind": self.kind, "dc": dc.decode(), "usn": int(usn), "nc": nc}

    def detect(
        self, client: LdapClient, cursor: Cursor, flavour: Flavour, config: LdapConfig
    ) -> Detected | None:
        now = self.start(client, [cursor["nc"]])
        if now is None or now["dc"] != cursor["dc"] or now["usn"] < cursor["usn"]:
            return None  # another DC, or a restored one: USNs do not compare
        since = f"(uSNChanged>={int(cursor['usn']) + 1})"
        changed = {
            guid_to_str(v)
            for _, attrs in client.paged_search(
                cursor["nc"], f"(&{flavour.search_filter}{since})", ["objectGUID"]
            )
            if (v := first_value(attrs, "objectGUID")) is not None and len(v) == 16
        }
        deleted_base = f"CN=Deleted Objects,{cursor['nc']}"
        show_deleted = LDAPControl(SHOW_DELETED, True, None)
        deleted = {
            guid_to_str(v)
            for _, attrs in client.paged_search(
                deleted_base, f"(&(isDeleted=TRUE){since})", ["objectGUID"], controls=[show_deleted]
            )
            if (v := first_value(attrs, "objectGUID")) is not None and len(v) == 16
        }
        return Detected(now, frozenset(changed - deleted), frozenset(deleted))


class _Consumer(LDAPObject, SyncreplConsumer):  # type: ignore[misc]
    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.cookie: str | None = None
        self.changed: set[str] = set()
        self.deleted: set[str] = set()
        self.present: set[str] = set()
        self.present_phase = False

    def syncrepl_set_cookie(self, cookie: str) -> None:
        self.cookie = cookie

    def syncrepl_get_cookie(self) -> str | None:
        return self.cookie

    def syncrepl_present(self, uuids: list[str] | None, refreshDeletes: bool = False) -> None:
        if uuids is not None:
            self.present.update(str(uuid.UUID(u)) for u in uuids)
        elif not refreshDeletes:
            self.present_phase = True  # what was not presented is gone

    def syncrepl_delete(self, uuids: list[str]) -> None:
        self.deleted.update(str(uuid.UUID(u)) for u in uuids)

    def syncrepl_entry(self, dn: str, attrs: Any, entry_uuid: str) -> None:
        self.changed.add(str(uuid.UUID(entry_uuid)))


class SyncreplDetector:
    kind = "syncrepl"

    def start(self, client: LdapClient, roots: list[str]) -> Cursor | None:
        nc = naming_context(client, roots)
        if nc is None:
            return None
        entry = client.read(nc, ["contextCSN"]) or {}
        csns = [v.decode() for v in entry.get("contextCSN", [])]
        if not csns:
            return None  # no syncprov overlay: full runs only
        return {"kind": self.kind, "base": nc, "cookie": "rid=000,csn=" + ";".join(sorted(csns))}

    def detect(
        self, client: LdapClient, cursor: Cursor, flavour: Flavour, config: LdapConfig
    ) -> Detected | None:
        consumer_client = LdapClient(config)
        consumer_client.open(connection_class=_Consumer)
        consumer: _Consumer = consumer_client.connection
        consumer.cookie = cursor["cookie"]
        try:
            msgid = consumer.syncrepl_search(
                cursor["base"],
                ldap.SCOPE_SUBTREE,
                mode="refreshOnly",
                filterstr=flavour.search_filter,
                attrlist=["entryUUID"],
            )
            while consumer.syncrepl_poll(all=1, msgid=msgid, timeout=config.operation_timeout):
                pass
        except ldap.LDAPError as exc:
            if isinstance(exc, ldap.UNAVAILABLE_CRITICAL_EXTENSION | ldap.PROTOCOL_ERROR):
                return None
            raise ConnectorError(
                FailureReason.SEARCH_FAILED, f"syncrepl with {config.url} failed: {exc}"
            ) from None
        finally:
            consumer_client.close()
        present = frozenset(consumer.present) if consumer.present_phase else None
        return Detected(
            {**cursor, "cookie": consumer.cookie or cursor["cookie"]},
            frozenset(consumer.changed),
            frozenset(consumer.deleted),
            present,
        )


DETECTORS: dict[str, UsnDetector | SyncreplDetector] = {"usn": UsnDetector(), "syncrepl": SyncreplDetector()}
