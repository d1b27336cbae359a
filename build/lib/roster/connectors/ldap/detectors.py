"""Change detection for incremental runs: which objects changed or left since a cursor.

- Active Directory, preferred: the DirSync control with its cookie (an account without
  replication rights may use it through the object-security flag). Deleted objects
  come back with ``isDeleted``.
- Active Directory, otherwise: the ``uSNChanged`` high-water mark of one domain controller
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

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import ldap
from ldap.controls import LDAPControl, RequestControl, ResponseControl
from ldap.ldapobject import LDAPObject
from ldap.syncrepl import SyncreplConsumer
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, univ

from roster.connectors.base import ConnectorError, FailureReason
from roster.connectors.ldap.active_directory import guid_to_str
from roster.connectors.ldap.client import LdapClient, translate
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.flavours import Flavour, first_value
from roster.domain.dn import normalize_dn

SHOW_DELETED = "1.2.840.113556.1.4.417"
E_SYNC_REFRESH_REQUIRED = 4096  # RFC 4533: the cookie is too old; the consumer must refresh in full
# Renaming or moving an OU moves everything inside without reporting those objects as
# changed, so detectors watch OUs and containers too, and such a change means a full run.
STRUCTURE = "(objectClass=organizationalUnit)(objectClass=container)"

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
                cursor["nc"], f"(&(|{flavour.search_filter}{STRUCTURE}){since})", ["objectGUID"]
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


class _DirSyncValue(univ.Sequence):  # type: ignore[misc]
    """Request and response value of the DirSync control (MS-ADTS 3.1.1.3.4.1.3)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("flags", univ.Integer()),
        namedtype.NamedType("maxBytes", univ.Integer()),
        namedtype.NamedType("cookie", univ.OctetString()),
    )


class DirSyncControl(RequestControl, ResponseControl):  # type: ignore[misc]
    controlType = "1.2.840.113556.1.4.841"
    OBJECT_SECURITY = 0x1  # lets an account without "Replicating Directory Changes" use DirSync

    def __init__(self, cookie: bytes = b"", flags: int = OBJECT_SECURITY, criticality: bool = True) -> None:
        self.criticality, self.cookie, self.flags, self.more = criticality, cookie, flags, 0

    def encodeControlValue(self) -> bytes:
        value = _DirSyncValue()
        value["flags"] = self.flags
        value["maxBytes"] = 1 << 20
        value["cookie"] = self.cookie
        encoded: bytes = encoder.encode(value)
        return encoded

    def decodeControlValue(self, encoded: bytes) -> None:
        value, _ = decoder.decode(encoded, asn1Spec=_DirSyncValue())
        self.more = int(value["flags"])  # in responses: "more data" flag
        self.cookie = bytes(value["cookie"])


class DirSyncDetector:
    """AD's DirSync control: changes (and deletions, as ``isDeleted``) since a cookie."""

    kind = "dirsync"
    NOTHING = "(objectGUID=\\00)"  # matches no object: a cookie for "now" without reading everything
    # Deleted objects keep objectClass but lose objectCategory: filter on classes only.
    CHANGES = (
        "(|(objectClass=user)(objectClass=group)(objectClass=organizationalUnit)(objectClass=container))"
    )

    def _run(
        self, client: LdapClient, nc: str, cookie: bytes, query: str, config: LdapConfig
    ) -> tuple[bytes, set[str], set[str]]:
        changed: set[str] = set()
        deleted: set[str] = set()
        conn = client.connection
        while True:
            try:
                # DirSync reports an object only when one of the requested attributes
                # changed: ask for all of them.
                msgid = conn.search_ext(
                    nc,
                    ldap.SCOPE_SUBTREE,
                    query,
                    ["*", "isDeleted"],
                    serverctrls=[DirSyncControl(cookie)],
                )
                _, data, _, controls = conn.result3(
                    msgid,
                    timeout=config.operation_timeout,
                    resp_ctrl_classes={DirSyncControl.controlType: DirSyncControl},
                )
            except ldap.LDAPError as exc:
                raise translate(exc, "reading changes with DirSync", config.url) from None
            for dn, attrs in data:
                guid = first_value(attrs, "objectGUID") if dn else None
                if guid is None or len(guid) != 16:
                    continue
                (deleted if first_value(attrs, "isDeleted") == b"TRUE" else changed).add(guid_to_str(guid))
            response = next((c for c in controls if c.controlType == DirSyncControl.controlType), None)
            if response is None:
                raise ConnectorError(
                    FailureReason.SEARCH_FAILED, f"{config.url} answered DirSync without a cookie"
                )
            cookie = response.cookie
            if not response.more:
                return cookie, changed - deleted, deleted

    def start(self, client: LdapClient, roots: list[str]) -> Cursor | None:
        nc = naming_context(client, roots)
        if nc is None:
            return None
        try:
            cookie, _, _ = self._run(client, nc, b"", self.NOTHING, client.config)
        except ConnectorError:
            return None  # not permitted for this account (or not AD): another detector is tried
        return {"kind": self.kind, "nc": nc, "cookie": base64.b64encode(cookie).decode()}

    def detect(
        self, client: LdapClient, cursor: Cursor, flavour: Flavour, config: LdapConfig
    ) -> Detected | None:
        try:
            old = base64.b64decode(cursor["cookie"])
        except (KeyError, ValueError):
            return None
        try:
            cookie, changed, deleted = self._run(client, cursor["nc"], old, self.CHANGES, config)
        except ConnectorError as exc:
            if exc.reason is FailureReason.SEARCH_FAILED:
                return None  # the server refused the cookie (too old, another domain): run in full
            raise
        new = {**cursor, "cookie": base64.b64encode(cookie).decode()}
        return Detected(new, frozenset(changed), frozenset(deleted))


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
                filterstr=f"(|{flavour.search_filter}(objectClass=organizationalUnit))",
                attrlist=["entryUUID"],
            )
            while consumer.syncrepl_poll(all=1, msgid=msgid, timeout=config.operation_timeout):
                pass
        except ldap.LDAPError as exc:
            info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            if (
                isinstance(exc, ldap.UNAVAILABLE_CRITICAL_EXTENSION | ldap.PROTOCOL_ERROR)
                or info.get("result") == E_SYNC_REFRESH_REQUIRED
            ):
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


Detector = UsnDetector | SyncreplDetector | DirSyncDetector
DETECTORS: dict[str, Detector] = {
    "dirsync": DirSyncDetector(),
    "usn": UsnDetector(),
    "syncrepl": SyncreplDetector(),
}


def start_cursor(
    client: LdapClient, flavour: Flavour, roots: list[str], choice: str = "auto"
) -> Cursor | None:
    """The first detector (in the flavour's order of preference, or the one chosen) that works here."""
    kinds = flavour.detectors if choice == "auto" else tuple(k for k in flavour.detectors if k == choice)
    for kind in kinds:
        cursor = DETECTORS[kind].start(client, roots)
        if cursor is not None:
            return cursor
    return None
