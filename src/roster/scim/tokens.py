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
from roster.store.schema import directories
from roster.store.schema_access import scim_tokens

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


def authenticate(conn: Connection, directory_id: str, presented: str) -> str | None:
    """The directory's state when ``presented`` is one of its working tokens, else None (an
    unknown directory and a wrong token look the same). One query; every candidate is compared
    in constant time."""
    digest = _digest(presented)
    now = utcnow()
    d, t = directories, scim_tokens
    rows = conn.execute(
        sa.select(d.c.state, t.c.id, t.c.expires_at)
        .join(t, t.c.directory_id == d.c.id)
        .where(d.c.id == directory_id, d.c.type == "scim")
    ).all()
    state = None
    for row in rows:
        expires = as_utc(row.expires_at)
        if same_digest(row.id, digest) and (expires is None or expires > now):
            state = row.state
    return state
