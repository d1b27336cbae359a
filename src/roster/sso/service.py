"""Single sign-on for accounts linked to an Entra directory, in the shape of the WorkOS SSO API.

1. ``start``: the host application sends the browser to ``/sso/authorize`` with an organization,
   a redirect URI registered for it, and its own ``state``. Roster records the sign-in (the state
   it sends on is stored hashed; the nonce and PKCE verifier encrypted) and sends the browser to
   the tenant.
2. ``finish``: the tenant sends the browser back to Roster with a code. Roster redeems it, checks
   the ID token, finds the directory user by ``oid`` and its linked account, and refuses a user
   the cache holds as inactive or an account that is disabled. The browser goes to the host's
   redirect URI with a one-time code (stored hashed, 10 minutes) or with an error.
3. ``redeem_code``: the host application's server trades the code (and its API key) for the
   profile, once.

A redirect URI that is not registered is refused before any redirect.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from roster.crypto import SecretBox
from roster.settings import Settings
from roster.sources import open_secret
from roster.sources.azure import graph_config
from roster.sso.oidc import SignInRefused, begin, redeem
from roster.store import repo
from roster.store.db import as_utc, utcnow
from roster.store.repo import Principal
from roster.store.schema import accounts, directories, directory_users
from roster.store.schema_access import sso_codes, sso_logins

TTL = timedelta(minutes=10)


class SsoError(Exception):
    """A request that cannot go on (no redirect happens): ``status`` and a message naming the field."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(message)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    engine: Engine,
    box: SecretBox,
    settings: Settings,
    organization_id: str,
    redirect_uri: str,
    host_state: str | None,
    callback_url: str,
) -> str:
    """Record a sign-in and return the provider's authorization URL (the provider is asked
    outside any transaction: a slow one holds no lock)."""
    with engine.connect() as conn:
        try:
            org = repo.get_organization(conn, organization_id)
        except repo.NotFound:
            raise SsoError(404, "entity_not_found", f"organization: {organization_id!r} not found") from None
        if redirect_uri not in (org["sso_redirect_uris"] or []):
            message = f"redirect_uri: {redirect_uri!r} is not registered for this organization"
            raise SsoError(422, "invalid_redirect_uri", message)
        directory = _azure_directory(conn, organization_id)
    config = graph_config(directory, open_secret(directory, box), settings)
    state, now = secrets.token_urlsafe(32), utcnow()
    try:
        url, flow = begin(config, callback_url, state)
    except SignInRefused as exc:
        raise SsoError(502, exc.code, f"the identity provider: {exc}") from None
    with engine.begin() as conn:
        conn.execute(sa.delete(sso_logins).where(sso_logins.c.expires_at < now))  # never finished
        conn.execute(
            sa.insert(sso_logins).values(
                id=_hash(state),
                organization_id=organization_id,
                directory_id=directory["id"],
                redirect_uri=redirect_uri,
                host_state=host_state,
                sealed=box.seal(json.dumps(flow)),
                created_at=now,
                expires_at=now + TTL,
            )
        )
    return url


def _azure_directory(conn: Connection, organization_id: str) -> dict[str, Any]:
    d = directories
    row = conn.execute(
        sa.select(d)
        .where(d.c.organization_id == organization_id, d.c.type == "azure", d.c.state != "inactive")
        .order_by(d.c.created_at)
    ).first()
    if row is None:
        raise SsoError(
            422, "no_connection", "organization: has no Microsoft Entra ID directory to sign in with"
        )
    return dict(row._mapping)


def finish(
    engine: Engine,
    box: SecretBox,
    settings: Settings,
    state: str,
    code: str | None,
    error: str | None,
) -> str:
    """Where the browser goes after the provider: the host's redirect URI with a code or an error.
    The state is spent first, in a transaction of its own; the provider is asked outside any."""
    with engine.begin() as conn:
        login = _take_login(conn, state)
        directory = repo.get_directory(conn, login["directory_id"])
    back = _back(login["redirect_uri"], login["host_state"])
    if error or not code:
        return back({"error": "access_denied", "error_description": error or "the provider sent no code"})
    flow = json.loads(box.open(login["sealed"]))
    try:
        config = graph_config(directory, open_secret(directory, box), settings)
        claims = redeem(config, flow, code, state)
        with engine.begin() as conn:
            user_id, account_id = _linked(conn, directory["id"], str(claims["oid"]))
            ours = _issue_code(conn, login["organization_id"], user_id, account_id)
    except SignInRefused as exc:
        return back({"error": "access_denied", "error_description": str(exc)})
    return back({"code": ours})


def _issue_code(conn: Connection, organization_id: str, user_id: str, account_id: str) -> str:
    code, now = secrets.token_urlsafe(32), utcnow()
    conn.execute(sa.delete(sso_codes).where(sso_codes.c.expires_at < now))
    conn.execute(
        sa.insert(sso_codes).values(
            id=_hash(code),
            organization_id=organization_id,
            directory_user_id=user_id,
            account_id=account_id,
            created_at=now,
            expires_at=now + TTL,
        )
    )
    return code


def _take_login(conn: Connection, state: str) -> dict[str, Any]:
    """The sign-in this state names, used up (a state works once, whoever submits it first)."""
    row = conn.execute(sa.select(sso_logins).where(sso_logins.c.id == _hash(state))).first()
    taken = conn.execute(sa.delete(sso_logins).where(sso_logins.c.id == _hash(state)))
    if row is None or taken.rowcount != 1:
        message = "state: no sign-in is waiting for this state (used, or never made)"
        raise SsoError(400, "invalid_state", message)
    expires = as_utc(row.expires_at)
    if expires is None or expires < utcnow():
        raise SsoError(400, "invalid_state", "state: this sign-in took longer than 10 minutes; start again")
    return dict(row._mapping)


def _back(redirect_uri: str, host_state: str | None) -> Callable[[dict[str, str]], str]:
    def build(params: dict[str, str]) -> str:
        query = {**params, **({"state": host_state} if host_state is not None else {})}
        return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(query)}"

    return build


def _linked(conn: Connection, directory_id: str, oid: str) -> tuple[str, str]:
    """(directory user id, account id) of an active directory user with an enabled linked account."""
    u = directory_users
    user = conn.execute(sa.select(u).where(u.c.directory_id == directory_id, u.c.idp_id == oid)).first()
    account = None
    if user is not None:
        account = conn.execute(sa.select(accounts).where(accounts.c.directory_user_id == user.id)).first()
    return _usable(user, account)


def _linked_by_ids(conn: Connection, user_id: str, account_id: str) -> None:
    """The user and the account a code was issued for are still active (a code outlives nothing)."""
    user = conn.execute(sa.select(directory_users).where(directory_users.c.id == user_id)).first()
    account = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
    _usable(user, account)


def _usable(user: Any, account: Any) -> tuple[str, str]:
    """A user Roster holds as active, with an enabled account: (user id, account id)."""
    if user is None or user.state != "active" or not user.present:
        raise SignInRefused("user_inactive", "this person is not an active user of the directory")
    if account is None or account.disabled:
        raise SignInRefused("account_disabled", "this person has no enabled account in the application")
    return str(user.id), str(account.id)


def redeem_code(conn: Connection, who: Principal, code: str) -> dict[str, Any]:
    """The profile for a one-time code (the API key must speak for its organization)."""
    row = conn.execute(sa.select(sso_codes).where(sso_codes.c.id == _hash(code))).first()
    expires = as_utc(row.expires_at) if row is not None else None
    if row is None or not who.can_see(row.organization_id) or expires is None or expires < utcnow():
        raise SsoError(400, "invalid_grant", "code: unknown, expired or for another organization")
    used = conn.execute(
        sa.update(sso_codes)
        .where(sso_codes.c.id == row.id, sso_codes.c.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:
        raise SsoError(400, "invalid_grant", "code: already used")
    try:
        _linked_by_ids(conn, row.directory_user_id, row.account_id)
    except SignInRefused as exc:
        raise SsoError(400, "invalid_grant", f"code: {exc}") from None
    user = conn.execute(sa.select(directory_users).where(directory_users.c.id == row.directory_user_id)).one()
    return {
        "token_type": "Bearer",
        "access_token": secrets.token_urlsafe(32),
        "expires_in": 600,
        "profile": _profile(dict(user._mapping), row.account_id),
    }


def _profile(user: dict[str, Any], account_id: str) -> dict[str, Any]:
    raw = user["raw_attributes"]
    return {
        "object": "profile",
        "id": account_id,
        "organization_id": user["organization_id"],
        "connection_id": user["directory_id"],
        "connection_type": "EntraIdOIDC",
        "idp_id": user["idp_id"],
        "email": user["email"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "name": user["name"],
        "raw_attributes": json.loads(raw) if isinstance(raw, str) else raw,
    }
