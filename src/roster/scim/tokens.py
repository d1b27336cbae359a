"""The bearer tokens of a ``scim`` directory: shown once, stored as a sha256 digest, compared in
constant time. Rotating keeps the old token working for a grace period, so the provider's
configuration can be changed without a gap."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.crypto import same_digest
from roster.store.db import as_utc, utcnow
from roster.store.schema import scim_tokens

PREFIX = "roster_scim_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(conn: Connection, directory_id: str, grace: timedelta = timedelta(0)) -> str:
    """A new current token; every older token stops working after ``grace`` at the latest (a
    rotation with no grace ends an earlier rotation's grace too)."""
    now = utcnow()
    t = scim_tokens
    conn.execute(
        sa.update(t)
        .where(
            t.c.directory_id == directory_id,
            sa.or_(t.c.expires_at.is_(None), t.c.expires_at > now + grace),
        )
        .values(expires_at=now + grace)
    )
    conn.execute(sa.delete(t).where(t.c.directory_id == directory_id, t.c.expires_at <= now))
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(sa.insert(t).values(id=_digest(token), directory_id=directory_id, created_at=now))
    return token


def verify(conn: Connection, directory_id: str, presented: str) -> bool:
    """Whether ``presented`` is a working token of this directory (every candidate is compared)."""
    digest = _digest(presented)
    now = utcnow()
    rows = conn.execute(
        sa.select(scim_tokens.c.id, scim_tokens.c.expires_at).where(
            scim_tokens.c.directory_id == directory_id
        )
    ).all()
    ok = False
    for row in rows:
        expires = as_utc(row.expires_at)
        ok |= same_digest(row.id, digest) and (expires is None or expires > now)
    return ok
