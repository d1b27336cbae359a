"""Console sessions: a random token in an HttpOnly cookie, stored only as its sha256.

A session ends at sign-out, after ``console_idle_minutes`` without a request, or
``console_session_hours`` after it began, whichever comes first. Forms carry a CSRF token
derived from the cookie's token (its keyed hash): a page from another site can neither read
the cookie nor compute the token, and nothing more is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.settings import Settings
from roster.store.db import as_utc, utcnow
from roster.store.schema import accounts, organizations
from roster.store.schema_access import console_sessions, operators

COOKIE = "roster_session"
PRE_COOKIE = "roster_signin"  # a random value before sign-in, so that the sign-in form has a CSRF token
TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class Session:
    key: str  # sha256 of the cookie's token
    csrf: str
    operator_id: str | None
    account_id: str | None
    organization_id: str | None
    organization_name: str | None
    email: str
    name: str | None

    @property
    def is_operator(self) -> bool:
        return self.operator_id is not None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(token: str) -> str:
    """The CSRF token of a cookie token (or of the pre-sign-in value)."""
    return hmac.new(token.encode(), b"roster console csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str | None, given: str | None) -> bool:
    if not token or not given:
        return False
    return hmac.compare_digest(csrf_for(token), given)


def start(
    conn: Connection,
    settings: Settings,
    *,
    operator_id: str | None = None,
    account_id: str | None = None,
    organization_id: str | None = None,
) -> str:
    """A new session; returns the cookie's token (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    conn.execute(
        sa.insert(console_sessions).values(
            id=digest(token),
            operator_id=operator_id,
            account_id=account_id,
            organization_id=organization_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.console_session_hours),
        )
    )
    return token


def load(conn: Connection, settings: Settings, token: str | None) -> Session | None:
    """The live session of a cookie token, its idle clock moved on; None when there is none."""
    if not token:
        return None
    key = digest(token)
    row = conn.execute(sa.select(console_sessions).where(console_sessions.c.id == key)).mappings().first()
    if row is None:
        return None
    now = utcnow()
    seen, ends = as_utc(row["last_seen_at"]), as_utc(row["expires_at"])
    assert seen is not None and ends is not None
    if now >= ends or now - seen >= timedelta(minutes=settings.console_idle_minutes):
        conn.execute(sa.delete(console_sessions).where(console_sessions.c.id == key))
        return None
    if now - seen >= TOUCH_EVERY:
        conn.execute(sa.update(console_sessions).where(console_sessions.c.id == key).values(last_seen_at=now))
    who = _who(conn, row["operator_id"], row["account_id"])
    if who is None:  # the account was disabled or is no longer an admin
        conn.execute(sa.delete(console_sessions).where(console_sessions.c.id == key))
        return None
    org_name = None
    if row["organization_id"]:
        org_name = conn.execute(
            sa.select(organizations.c.name).where(organizations.c.id == row["organization_id"])
        ).scalar()
    return Session(
        key, csrf_for(token), row["operator_id"], row["account_id"], row["organization_id"], org_name, *who
    )


def _who(conn: Connection, operator_id: str | None, account_id: str | None) -> tuple[str, str | None] | None:
    if operator_id is not None:
        email = conn.execute(sa.select(operators.c.email).where(operators.c.id == operator_id)).scalar()
        return None if email is None else (email, None)
    row = conn.execute(
        sa.select(accounts.c.email, accounts.c.name, accounts.c.role, accounts.c.disabled).where(
            accounts.c.id == account_id
        )
    ).first()
    if row is None or row.disabled or row.role != "admin":
        return None
    return row.email, row.name


def choose_organization(conn: Connection, session: Session, organization_id: str) -> bool:
    """An operator picks the organization to administer; False when there is no such organization."""
    if not session.is_operator:
        return False
    found = conn.execute(sa.select(organizations.c.id).where(organizations.c.id == organization_id)).first()
    if found is None:
        return False
    conn.execute(
        sa.update(console_sessions)
        .where(console_sessions.c.id == session.key)
        .values(organization_id=organization_id)
    )
    return True


def end(conn: Connection, token: str | None) -> None:
    if token:
        conn.execute(sa.delete(console_sessions).where(console_sessions.c.id == digest(token)))


def prune(conn: Connection, now: datetime | None = None) -> int:
    """Delete sessions past their absolute end."""
    result = conn.execute(
        sa.delete(console_sessions).where(console_sessions.c.expires_at <= (now or utcnow()))
    )
    return int(result.rowcount or 0)
