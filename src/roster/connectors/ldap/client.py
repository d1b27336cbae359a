"""A thin python-ldap client: connect, TLS, bind, streamed paged search.

Pages are streamed with the msgid API (``result3(all=0)``), one entry at a
time, so a page is never held whole; references (referrals) are not chased.
Every libldap failure becomes a ConnectorError with a stable reason.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import ldap
from ldap.controls import SimplePagedResultsControl

from roster.connectors.base import ConnectorError, FailureReason
from roster.connectors.ldap.config import LdapConfig, check_reach

RawAttrs = dict[str, list[bytes]]
Entry = tuple[str, RawAttrs]
_PAGED = SimplePagedResultsControl.controlType


def _describe(exc: ldap.LDAPError) -> str:
    info: Any = exc.args[0] if exc.args else {}
    if isinstance(info, dict):
        parts = [str(info.get("desc", "")).strip(), str(info.get("info", "")).strip()]
        return ": ".join(p for p in parts if p) or type(exc).__name__
    return str(exc)


def translate(exc: ldap.LDAPError, action: str, server: str) -> ConnectorError:
    detail = _describe(exc)
    if isinstance(exc, ldap.INVALID_CREDENTIALS):
        return ConnectorError(
            FailureReason.INVALID_CREDENTIALS, f"bind refused by {server}: invalid credentials", detail
        )
    if isinstance(exc, ldap.SERVER_DOWN):
        lowered = detail.lower()
        if "certificate" in lowered or "tls" in lowered or "ssl" in lowered:
            return ConnectorError(FailureReason.TLS, f"TLS with {server} failed while {action}: {detail}")
        return ConnectorError(FailureReason.UNREACHABLE, f"{server} is unreachable while {action}: {detail}")
    if isinstance(exc, ldap.CONNECT_ERROR):
        return ConnectorError(FailureReason.TLS, f"TLS with {server} failed while {action}: {detail}")
    if isinstance(exc, ldap.TIMEOUT | ldap.TIMELIMIT_EXCEEDED):
        return ConnectorError(FailureReason.TIMEOUT, f"{server} timed out while {action}")
    if isinstance(exc, ldap.NO_SUCH_OBJECT):
        return ConnectorError(FailureReason.NO_SUCH_PATH, f"{action}: the entry does not exist on {server}")
    return ConnectorError(FailureReason.SEARCH_FAILED, f"{server} failed while {action}: {detail}")


def _tcp_reachable(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 636), timeout=timeout):
            return True
    except OSError:
        return False


def reach_diagnosis(cfg: LdapConfig) -> str | None:
    """What most likely went wrong below LDAP, tried step by step (libldap says only "Can't
    contact LDAP server"): the name, then the port."""
    parts = urlsplit(cfg.url)
    if parts.scheme == "ldapi" or not parts.hostname:
        return None
    port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    try:
        socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError:
        return f"the name {parts.hostname} does not resolve (check the host name and the server's DNS)"
    try:
        with socket.create_connection((parts.hostname, port), timeout=cfg.connect_timeout):
            return None  # it answers: the failure was above TCP
    except ConnectionRefusedError:
        return f"{parts.hostname} refused a connection on port {port} (nothing listens there: wrong port?)"
    except TimeoutError:
        return (
            f"{parts.hostname} did not answer on port {port} within {cfg.connect_timeout:g} s "
            "(a firewall, or the wrong host?)"
        )
    except OSError as exc:
        return f"cannot connect to {parts.hostname} port {port}: {exc.strerror or exc}"


def tls_diagnosis(cfg: LdapConfig) -> str | None:
    """Why the server's certificate is refused, in OpenSSL's words (libldap does not say): a
    handshake of our own with the same CA and host name. None when it does not tell."""
    parts = urlsplit(cfg.url)
    context = ssl.create_default_context(cafile=cfg.ca_file) if cfg.ca_file else ssl.create_default_context()
    address = (parts.hostname or "", parts.port or 636)
    try:
        with (
            socket.create_connection(address, timeout=cfg.connect_timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            tls.version()
    except ssl.SSLCertVerificationError as exc:
        return f"the certificate is not accepted: {exc.verify_message}"
    except (OSError, ssl.SSLError):
        if _speaks_plain_ldap(parts.hostname or "", address[1], cfg.connect_timeout):
            return (
                f"port {address[1]} does not speak TLS but plain LDAP: use ldap:// with StartTLS, "
                "or the LDAPS port (usually 636)"
            )
        return None
    return None


def _speaks_plain_ldap(host: str, port: int, timeout: float) -> bool:
    """Whether the port answers a plain LDAP request (the root DSE, anonymously)."""
    probe = ldap.initialize(f"ldap://{host}:{port}", bytes_mode=False)
    probe.set_option(ldap.OPT_NETWORK_TIMEOUT, timeout)
    probe.set_option(ldap.OPT_TIMEOUT, timeout)
    try:
        probe.search_ext_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"], timeout=timeout)
    except (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR):
        return False
    except ldap.LDAPError:
        return True  # an LDAP answer, even a refusal, is plain LDAP
    finally:
        with contextlib.suppress(ldap.LDAPError):
            probe.unbind_s()
    return True


class LdapClient:
    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self._conn: Any = None

    def __enter__(self) -> LdapClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, connection_class: Any = None) -> None:
        """Connect and bind; ``connection_class`` is an LDAPObject subclass (syncrepl needs one)."""
        cfg = self.config
        if cfg.reach is not None:
            check_reach(cfg.url, cfg.reach)
        try:
            if connection_class is None:
                conn = ldap.initialize(cfg.url, bytes_mode=False)
            else:
                conn = connection_class(cfg.url)
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, cfg.connect_timeout)
            conn.set_option(ldap.OPT_TIMEOUT, cfg.operation_timeout)
            if cfg.insecure_skip_tls_verify:
                conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_NEVER)
            else:
                conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            if cfg.ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, cfg.ca_file)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
            if cfg.start_tls:
                conn.start_tls_s()
            conn.simple_bind_s(cfg.bind_dn, cfg.bind_password)
        except ldap.SERVER_DOWN as exc:
            if cfg.url.startswith("ldaps://") and _tcp_reachable(cfg.url, cfg.connect_timeout):
                why = (tls_diagnosis(cfg) if cfg.reach is None else None) or (
                    "is its certificate signed by the CA in ca_file, for this host name?"
                )
                raise ConnectorError(
                    FailureReason.TLS,
                    f"TLS with {cfg.url} failed: the server answers but the TLS handshake did not "
                    f"complete ({why}): {_describe(exc)}",
                ) from None
            probed = reach_diagnosis(cfg) if cfg.reach is None else None  # an organization: no probing
            if probed is not None:
                raise ConnectorError(
                    FailureReason.UNREACHABLE, f"{cfg.url} is unreachable: {probed}"
                ) from None
            raise translate(exc, "connecting and binding", cfg.url) from None
        except ldap.LDAPError as exc:
            raise translate(exc, "connecting and binding", cfg.url) from None
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._conn.unbind_s()
            self._conn = None

    @property
    def connection(self) -> Any:
        return self._conn

    def base_exists(self, dn: str) -> bool:
        try:
            self._conn.search_ext_s(
                dn,
                ldap.SCOPE_BASE,
                "(objectClass=*)",
                ["1.1"],
                timeout=self.config.operation_timeout,
            )
        except ldap.NO_SUCH_OBJECT:
            return False
        except ldap.LDAPError as exc:
            raise translate(exc, f"reading {dn}", self.config.url) from None
        return True

    def read(self, dn: str, attributes: Sequence[str]) -> dict[str, list[bytes]] | None:
        """One entry (base scope), or None when it does not exist. ``dn=""`` reads the root DSE."""
        try:
            found = self._conn.search_ext_s(
                dn,
                ldap.SCOPE_BASE,
                "(objectClass=*)",
                list(attributes),
                timeout=self.config.operation_timeout,
            )
        except ldap.NO_SUCH_OBJECT:
            return None
        except ldap.LDAPError as exc:
            raise translate(exc, f"reading {dn or 'the root DSE'}", self.config.url) from None
        for entry_dn, attrs in found:
            if entry_dn is not None:
                return dict(attrs)
        return None

    def read_ranged(self, dn: str, attribute: str, start: int) -> list[bytes]:
        """The values of ``attribute`` from index ``start`` on, following AD's range retrieval
        (``member;range=1500-2999``, ... ``member;range=4500-*``)."""
        values: list[bytes] = []
        prefix = attribute.lower() + ";range="
        while True:
            entry = self.read(dn, [f"{attribute};range={start}-*"])
            if entry is None:
                raise ConnectorError(
                    FailureReason.SEARCH_FAILED, f"{dn} vanished while reading its {attribute}"
                )
            found = [(k, v) for k, v in entry.items() if k.lower().startswith(prefix)]
            if not found:
                return values  # nothing beyond start
            key, chunk = found[0]
            values.extend(chunk)
            high = key.lower()[len(prefix) :].split("-", 1)[1]
            if high == "*":
                return values
            start = int(high) + 1

    def paged_search(
        self, base: str, filterstr: str, attributes: Sequence[str], controls: Sequence[Any] = ()
    ) -> Iterator[Entry]:
        """Every entry of the subtree at ``base``; raises ConnectorError on any failure."""
        extra = list(controls)
        cfg = self.config
        cookie = b""
        try:
            while True:
                page = SimplePagedResultsControl(True, size=cfg.page_size, cookie=cookie)
                msgid = self._conn.search_ext(
                    base, ldap.SCOPE_SUBTREE, filterstr, list(attributes), serverctrls=[page, *extra]
                )
                returned: list[Any] = []
                while True:
                    rtype, rdata, _, returned = self._conn.result3(
                        msgid,
                        all=0,
                        timeout=cfg.operation_timeout,
                        resp_ctrl_classes={_PAGED: SimplePagedResultsControl},
                    )
                    if rtype == ldap.RES_SEARCH_ENTRY:
                        yield from rdata
                    elif rtype == ldap.RES_SEARCH_RESULT:
                        break
                    # RES_SEARCH_REFERENCE and intermediates: not chased
                cookie = next((c.cookie for c in returned if c.controlType == _PAGED), b"")
                if not cookie:
                    return
        except ldap.LDAPError as exc:
            raise translate(exc, f"searching {base}", cfg.url) from None
