"""Login: directory-linked accounts bind to the directory as the user; unlinked ones check the local hash.

No user enumeration: an unknown e-mail, a wrong password and a disabled account whose
password was wrong all answer ``invalid_credentials``, and an unknown e-mail still spends
a hash verification. Failures are counted per account and per source address; past the
limit the answer is ``too_many_attempts`` until the window ends. Passwords are never
stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from roster.accounts import throttle
from roster.accounts.passwords import verify
from roster.accounts.service import account_view, groups_of
from roster.connectors.ldap.bind import BindReason, bind_name
from roster.runtime import Runtime
from roster.sources import password_check
from roster.store.repo import get_directory
from roster.store.schema import accounts, directory_users

WINDOW = timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20

_BIND_REASONS: dict[str, str] = {
    BindReason.OK: "ok",
    BindReason.INVALID_CREDENTIALS: "invalid_credentials",
    BindReason.LOCKED: "locked",
    BindReason.DISABLED: "disabled",
    BindReason.ACCOUNT_EXPIRED: "disabled",
    BindReason.LOGON_NOT_PERMITTED: "disabled",
    BindReason.PASSWORD_EXPIRED: "password_expired",
    BindReason.MUST_CHANGE_PASSWORD: "password_expired",
    BindReason.INSECURE: "directory_insecure",  # the password was not sent: no TLS to send it over
}


@dataclass(frozen=True)
class LoginResult:
    reason: str  # ok | invalid_credentials | locked | disabled | password_expired | too_many_attempts
    account: dict[str, Any] | None = None  # | directory_unavailable
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def _keys(org: str, email: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"account:{org}:{email.strip().lower()}", ACCOUNT_LIMIT)]
    if address:
        keys.append((f"address:{address}", ADDRESS_LIMIT))
    return keys


def login(rt: Runtime, org: str, email: str, password: str, address: str | None = None) -> LoginResult:
    keys = _keys(org, email, address)
    with rt.engine.begin() as conn:  # the attempt is counted before its password is checked
        wait = throttle.reserve(conn, keys)
    if wait is not None:
        return LoginResult("too_many_attempts", retry_after=wait)
    with rt.engine.connect() as conn:
        account = (
            conn.execute(
                sa.select(accounts).where(
                    accounts.c.organization_id == org, accounts.c.email_lower == email.strip().lower()
                )
            )
            .mappings()
            .first()
        )
    reason = _check(rt, dict(account) if account is not None else None, password)
    with rt.engine.begin() as conn:
        if reason in ("directory_unavailable", "directory_insecure"):  # nothing said about the password
            throttle.give_back(conn, keys)
        else:
            throttle.settle(conn, keys, failed=reason != "ok")
        if reason != "ok" or account is None:
            return LoginResult(reason)
        view = account_view(dict(account), groups_of(conn, org, account["id"]))
    return LoginResult("ok", view)


def _check(rt: Runtime, account: dict[str, Any] | None, password: str) -> str:
    if account is None or not account["directory_user_id"]:
        good = verify(account["password_hash"] if account else None, password)
        if not good:
            return "invalid_credentials"
        assert account is not None
        return "disabled" if account["disabled"] else "ok"
    with rt.engine.connect() as conn:
        directory = get_directory(conn, account["directory_id"])
        user = conn.execute(
            sa.select(directory_users.c.dn, directory_users.c.username).where(
                directory_users.c.id == account["directory_user_id"]
            )
        ).first()
    if user is None:
        return "invalid_credentials"
    template = directory["config"].get("user_bind_template")
    try:
        name = bind_name(template, user.username) if template and user.username else user.dn
    except ValueError:
        name = user.dn
    check = password_check(directory, rt.box, rt.settings, rt.engine)
    if check is None:
        return "directory_unavailable"
    outcome = check(name, password)
    reason = _BIND_REASONS.get(outcome.reason, "directory_unavailable")
    if reason == "ok" and account["disabled"]:
        return "disabled"  # disabled here (by an admin, or by the directory at the last sync)
    return reason
