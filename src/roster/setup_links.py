"""Self-serve setup links: the customer's IT admin connects the directory without an account.

An admin (console or ``roster setup-link create``) or the host application (WorkOS's
``POST /portal/generate_link``) makes a link for one organization and purpose (``dsync``). The
link carries a random token, stored only as its sha256; a new link for the same organization and
purpose revokes the one before, so at most one is live. It expires after ``setup_link_hours``
(72 by default; WorkOS's own links last 5 minutes, too short for a person who has to find a
bind account first).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.connectors.base import ConfigError
from roster.settings import Settings
from roster.store import repo
from roster.store.db import as_utc, utcnow
from roster.store.schema import directories
from roster.store.schema_access import setup_links

INTENTS = ("dsync",)


@dataclass(frozen=True)
class SetupLink:
    key: str  # sha256 of the token
    organization_id: str
    organization_name: str
    intent: str
    directory_id: str | None
    success_url: str | None
    return_url: str | None
    expires_at: Any


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_url(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 2000:
        raise ConfigError(f"{field}: must be an http:// or https:// URL")
    return value


def create(
    conn: Connection,
    settings: Settings,
    organization_id: str,
    *,
    intent: str = "dsync",
    directory_id: str | None = None,
    success_url: str | None = None,
    return_url: str | None = None,
    external_user_id: str | None = None,
    ttl: timedelta | None = None,
) -> tuple[str, dict[str, Any]]:
    """A new link (the one before it for this organization and purpose is revoked): (URL, row)."""
    if intent not in INTENTS:
        raise ConfigError(f"intent: {intent!r} is not supported; use one of {', '.join(INTENTS)}")
    repo.get_organization(conn, organization_id)  # NotFound names it
    if directory_id is not None:
        owner = conn.execute(
            sa.select(directories.c.organization_id).where(directories.c.id == directory_id)
        ).scalar()
        if owner != organization_id:
            raise ConfigError(f"directory: {directory_id} is not a directory of {organization_id}")
    now = utcnow()
    revoke(conn, organization_id, intent)
    token = secrets.token_urlsafe(32)
    row = {
        "id": _digest(token),
        "organization_id": organization_id,
        "intent": intent,
        "directory_id": directory_id,
        "success_url": _check_url("success_url", success_url),
        "return_url": _check_url("return_url", return_url),
        "external_user_id": external_user_id,
        "created_at": now,
        "expires_at": now + (ttl or timedelta(hours=settings.setup_link_hours)),
        "revoked_at": None,
    }
    conn.execute(sa.insert(setup_links).values(**row))
    return f"{settings.public_url.rstrip('/')}/setup/{token}", row


def revoke(
    conn: Connection, organization_id: str, intent: str | None = None, external_user_id: str | None = None
) -> int:
    """Revoke the live links of an organization (of one purpose, or made for one user)."""
    t = setup_links
    query = sa.update(t).where(t.c.organization_id == organization_id, t.c.revoked_at.is_(None))
    if intent is not None:
        query = query.where(t.c.intent == intent)
    if external_user_id is not None:
        query = query.where(t.c.external_user_id == external_user_id)
    return int(conn.execute(query.values(revoked_at=utcnow())).rowcount or 0)


def resolve(conn: Connection, token: str) -> SetupLink | None:
    """The live link of a token; None for an unknown, revoked or expired one (all look the same)."""
    row = conn.execute(sa.select(setup_links).where(setup_links.c.id == _digest(token))).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    expires = as_utc(row["expires_at"])
    if expires is None or expires <= utcnow():
        return None
    org = repo.get_organization(conn, row["organization_id"])
    return SetupLink(
        row["id"],
        row["organization_id"],
        org["name"],
        row["intent"],
        row["directory_id"],
        row["success_url"],
        row["return_url"],
        expires,
    )


def attach(conn: Connection, link: SetupLink, directory_id: str) -> bool:
    """The directory this link set up: opening it again continues with that directory. False when
    another submission of the same link attached its directory first (one link, one directory)."""
    done = conn.execute(
        sa.update(setup_links)
        .where(setup_links.c.id == link.key, setup_links.c.directory_id.is_(None))
        .values(directory_id=directory_id)
    )
    return done.rowcount == 1
