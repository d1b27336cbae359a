"""Who may sign in to the console: operators (every organization) and organization admins.

An admin linked to a directory signs in with the directory password (the pass-through login,
which honours lockout and disablement); an unlinked admin with the local password. Every
refusal that could tell whether an e-mail address exists reads the same, and spends the same
password-hash time.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from roster.accounts import throttle
from roster.accounts.login import login
from roster.accounts.passwords import hash_password, verify
from roster.ids import new_id
from roster.runtime import Runtime
from roster.store.db import utcnow
from roster.store.schema import accounts
from roster.store.schema_access import operators

MESSAGES = {
    "invalid_credentials": "The e-mail address or the password is not right, "
    "or this account does not administer Roster.",
    "locked": "This account is locked in the directory. Ask your directory's administrator to unlock it.",
    "disabled": "This account is disabled.",
    "password_expired": "Your directory password has expired. Change it in the directory, then sign in.",
    "directory_unavailable": "The directory cannot be reached to check your password. Try again in a "
    "few minutes; if the connection stays lost, use the recovery link Roster e-mailed to the admins.",
    "directory_insecure": "Your directory is connected without LDAPS or StartTLS, so Roster does not send "
    "passwords to it. Use the recovery link Roster e-mails, or ask an operator to change the connection.",
}
OPERATOR_LIMIT = 5


@dataclass(frozen=True)
class SignIn:
    reason: str  # ok, or why not (a key of MESSAGES, or too_many_attempts)
    operator_id: str | None = None
    account_id: str | None = None
    organization_id: str | None = None
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @property
    def message(self) -> str:
        if self.reason == "too_many_attempts":
            minutes = max(1, round((self.retry_after or 60) / 60))
            return f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes != 1)}."
        return MESSAGES.get(self.reason, MESSAGES["invalid_credentials"])


def create_operator(rt: Runtime, email: str, password: str) -> str:
    address = email.strip()
    if "@" not in address or len(address) > 320:
        raise ValueError("email: must be an e-mail address")
    hashed = hash_password(password)
    with rt.engine.begin() as conn:
        taken = conn.execute(sa.select(operators.c.id).where(operators.c.email_lower == address.lower()))
        if taken.first() is not None:
            raise ValueError(f"email: an operator {address} exists already")
        oid = new_id("operator")
        conn.execute(
            sa.insert(operators).values(
                id=oid, email=address, email_lower=address.lower(), password_hash=hashed, created_at=utcnow()
            )
        )
    return oid


def sign_in(rt: Runtime, email: str, password: str, address: str | None) -> SignIn:
    lowered = email.strip().lower()
    with rt.engine.connect() as conn:
        operator = conn.execute(sa.select(operators).where(operators.c.email_lower == lowered)).first()
        admins = conn.execute(
            sa.select(accounts.c.organization_id)
            .where(accounts.c.email_lower == lowered, accounts.c.role == "admin")
            .order_by(accounts.c.created_at)
        ).scalars()
        orgs = list(admins)
    if operator is not None:
        return _operator(rt, operator.id, operator.password_hash, lowered, password, address)
    refused = SignIn("invalid_credentials")
    for org in orgs:
        result = login(rt, org, email, password, address)
        if result.ok and result.account is not None:
            return SignIn("ok", account_id=result.account["id"], organization_id=org)
        if result.reason != "invalid_credentials":
            return SignIn(result.reason, retry_after=result.retry_after)
    if not orgs:
        verify(None, password)  # as long as a real check takes
    return refused


def _operator(
    rt: Runtime, operator_id: str, hashed: str, lowered: str, password: str, address: str | None
) -> SignIn:
    keys = [(f"operator:{lowered}", OPERATOR_LIMIT)]
    if address:
        keys.append((f"address:{address}", 20))
    with rt.engine.begin() as conn:
        wait = throttle.reserve(conn, keys)
    if wait is not None:
        return SignIn("too_many_attempts", retry_after=wait)
    good = verify(hashed, password)
    with rt.engine.begin() as conn:
        throttle.settle(conn, keys, failed=not good)
    return SignIn("ok", operator_id=operator_id) if good else SignIn("invalid_credentials")
