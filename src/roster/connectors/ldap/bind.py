"""Pass-through authentication: bind to the directory as the user, over TLS only.

Active Directory explains a refused bind with a ``data`` code in the diagnostic
message (``80090308: LdapErr: ... AcceptSecurityContext error, data 775, v1db1``);
those codes become stable reasons. An unknown user and a wrong password give the
same reason, so a caller cannot tell them apart (no user enumeration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

import ldap
import ldap.dn

from roster.connectors.base import ConnectorError, FailureReason
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.config import LdapConfig


class BindReason(StrEnum):
    OK = "ok"
    INVALID_CREDENTIALS = "invalid_credentials"
    LOCKED = "locked"
    DISABLED = "disabled"
    PASSWORD_EXPIRED = "password_expired"
    MUST_CHANGE_PASSWORD = "must_change_password"
    ACCOUNT_EXPIRED = "account_expired"
    LOGON_NOT_PERMITTED = "logon_not_permitted"
    INSECURE = "insecure_transport"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    TIMEOUT = "timeout"
    ERROR = "error"


# MS-ERREF / AD LDAP bind "data" codes
AD_DATA_CODES = {
    "525": BindReason.INVALID_CREDENTIALS,  # user not found: reported like a wrong password
    "52e": BindReason.INVALID_CREDENTIALS,
    "530": BindReason.LOGON_NOT_PERMITTED,  # not permitted at this time
    "531": BindReason.LOGON_NOT_PERMITTED,  # not permitted at this workstation
    "532": BindReason.PASSWORD_EXPIRED,
    "533": BindReason.DISABLED,
    "701": BindReason.ACCOUNT_EXPIRED,
    "773": BindReason.MUST_CHANGE_PASSWORD,
    "775": BindReason.LOCKED,
}
LOGIN_CONNECT_TIMEOUT = 5.0  # a login waits seconds, not the minutes a sync may take
LOGIN_OPERATION_TIMEOUT = 10.0
_DATA = re.compile(r"\bdata ([0-9a-fA-F]{3,8})\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class BindOutcome:
    reason: BindReason
    detail: str

    @property
    def ok(self) -> bool:
        return self.reason is BindReason.OK


def reason_from_message(message: str) -> BindReason:
    match = _DATA.search(message)
    if match is None:
        return BindReason.INVALID_CREDENTIALS
    return AD_DATA_CODES.get(match.group(1).lower(), BindReason.INVALID_CREDENTIALS)


def bind_name(template: str, login: str) -> str:
    """The name to bind with: ``template`` with ``{login}`` filled in.

    Templates look like ``{login}@example.local``, ``EXAMPLE\\{login}`` or
    ``uid={login},ou=People,dc=example,dc=com`` (the login is DN-escaped there).
    """
    login = login.strip()
    if not login or len(login) > 256 or _CONTROL.search(login):
        raise ValueError("login: must be 1 to 256 printable characters")
    if "{login}" not in template:
        raise ValueError("user_bind_template: must contain {login}")
    head = template.split("{login}", 1)[0]
    if "=" in head:  # inside a DN
        return template.replace("{login}", ldap.dn.escape_dn_chars(login))
    if "\\" in login or ("@" in template and "@" in login):
        raise ValueError("login: give the user name only, without a domain")
    return template.replace("{login}", login)


def verify_password(config: LdapConfig, name: str, password: str) -> BindOutcome:
    """Bind as ``name``; never sends a password without TLS and never binds with an empty one."""
    if not password:
        # An empty password would be an unauthenticated bind, which servers report as success.
        return BindOutcome(BindReason.INVALID_CREDENTIALS, "empty password")
    if not (config.url.startswith(("ldaps://", "ldapi://")) or config.start_tls):  # ldapi: a local socket
        return BindOutcome(
            BindReason.INSECURE, "refusing to send a password without TLS (use ldaps:// or StartTLS)"
        )
    if config.insecure_skip_tls_verify:
        return BindOutcome(BindReason.INSECURE, "refusing to send a password over TLS that is not verified")
    user_config = replace(
        config,
        bind_dn=name,
        bind_password=password,
        connect_timeout=min(config.connect_timeout, LOGIN_CONNECT_TIMEOUT),
        operation_timeout=min(config.operation_timeout, LOGIN_OPERATION_TIMEOUT),
    )
    client = LdapClient(user_config)
    try:
        client.open()
    except ConnectorError as exc:
        if exc.reason is FailureReason.INVALID_CREDENTIALS:
            reason = reason_from_message(exc.diagnostic)
            return BindOutcome(reason, str(reason))
        mapped = {
            FailureReason.UNREACHABLE: BindReason.UNREACHABLE,
            FailureReason.TLS: BindReason.TLS,
            FailureReason.TIMEOUT: BindReason.TIMEOUT,
        }.get(exc.reason, BindReason.ERROR)
        return BindOutcome(mapped, str(exc))
    finally:
        client.close()
    return BindOutcome(BindReason.OK, "bind succeeded")
