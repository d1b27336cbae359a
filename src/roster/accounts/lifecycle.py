"""Enabling, losing and disabling a directory: who is told, and the links they get.

- A directory is enabled (its first run links accounts): the alert recipients are told.
- The access check fails: the recipients get one e-mail per outage, each with a
  single-use link that unlinks their own account and lets them set a local password.
- An admin asks to disable a directory: every admin gets a confirmation link; nothing
  changes until one is used. Then every linked account is unlinked and gets a
  password-reset link.
- The directory is enabled again: accounts it links again are told they are
  directory-managed once more.
Links are ``<action id>.<secret>``; only a hash of the secret is stored. They expire
(``link_ttl_hours``) and work once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.accounts.passwords import hash_password
from roster.ids import new_id
from roster.notify.mail import box_for, queue
from roster.settings import Settings
from roster.store.db import as_utc, utcnow
from roster.store.repo import get_directory, get_organization
from roster.store.schema import accounts, action_tokens, directories, organizations


class LinkError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def recipients(conn: Connection, org: str) -> list[dict[str, Any]]:
    row = get_organization(conn, org)
    q = sa.select(accounts.c.id, accounts.c.email).where(
        accounts.c.organization_id == org, accounts.c.disabled.is_(False)
    )
    if row["notify_only_selected"]:
        q = q.where(accounts.c.id.in_(list(row["alert_recipients"] or [])))
    else:
        q = q.where(accounts.c.role == "admin")
    return [dict(r._mapping) for r in conn.execute(q.order_by(accounts.c.id))]


def recipient_ids(conn: Connection, org: str, given: list[str]) -> set[str]:
    """Accounts of the organization named by id, e-mail address or (when unique) name."""
    rows = conn.execute(
        sa.select(accounts.c.id, accounts.c.email, accounts.c.name).where(accounts.c.organization_id == org)
    ).all()
    found = set()
    for item in given:
        text = item.strip()
        matches = [r.id for r in rows if r.id == text] or [
            r.id for r in rows if (r.email or "").lower() == text.lower()
        ]
        matches = matches or [r.id for r in rows if (r.name or "").lower() == text.lower()]
        if len(matches) > 1:
            raise ValueError(f"recipients: {text!r} names {len(matches)} accounts; give an e-mail address")
        if not matches:
            raise ValueError(
                f"recipients: {text!r} is not an account (id, e-mail or name) of this organization"
            )
        found.add(matches[0])
    return found


def set_alerts(conn: Connection, org: str, only_selected: bool, account_ids: list[str]) -> list[str]:
    """Store the alert settings (recipients by account id, e-mail or unique name); return warnings
    (an empty selection alerts nobody)."""
    get_organization(conn, org)
    known = recipient_ids(conn, org, account_ids)
    conn.execute(
        sa.update(organizations)
        .where(organizations.c.id == org)
        .values(notify_only_selected=only_selected, alert_recipients=sorted(known))
    )
    if only_selected and not known:
        return [
            "notify only selected admins is on and nobody is selected: no one will receive directory alerts"
        ]
    return []


def issue_link(
    conn: Connection,
    settings: Settings,
    org: str,
    kind: str,
    account_id: str | None,
    directory_id: str | None,
) -> str:
    action_id, secret = new_id("action"), secrets.token_urlsafe(32)
    now = utcnow()
    conn.execute(
        sa.insert(action_tokens).values(
            id=action_id,
            organization_id=org,
            kind=kind,
            account_id=account_id,
            directory_id=directory_id,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
            created_at=now,
            expires_at=now + timedelta(hours=settings.link_ttl_hours),
        )
    )
    return (
        f"{settings.public_url.rstrip('/')}/actions/{action_id}.{secret}"  # a page (roster.web.action_pages)
    )


def look_up(conn: Connection, token: str) -> dict[str, Any]:
    action_id, _, secret = token.partition(".")
    row = conn.execute(sa.select(action_tokens).where(action_tokens.c.id == action_id)).mappings().first()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if row is None or not hmac.compare_digest(row["secret_hash"], digest):
        raise LinkError("link_invalid", "this link is not valid")
    if row["used_at"] is not None:
        raise LinkError("link_used", "this link was already used; links work once")
    expires = as_utc(row["expires_at"])
    if expires is None or expires <= utcnow():
        raise LinkError("link_expired", "this link has expired; ask for a new one")
    return dict(row)


def _mark_used(conn: Connection, action_id: str) -> None:
    done = conn.execute(
        sa.update(action_tokens)
        .where(action_tokens.c.id == action_id, action_tokens.c.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if done.rowcount != 1:
        raise LinkError("link_used", "this link was already used; links work once")


def directory_enabled(conn: Connection, org: str, directory: dict[str, Any]) -> None:
    to = [r["email"] for r in recipients(conn, org)]
    queue(
        conn,
        org,
        to,
        f"Directory {directory['name']} is enabled",
        f"The directory {directory['name']} ({directory['id']}) is now linked to your organization.\n"
        "Accounts whose e-mail matches a directory user are now directory-managed: they sign in with "
        "their directory password.\n",
        "directory_enabled",
    )


def access_lost(conn: Connection, settings: Settings, directory: dict[str, Any], error: str) -> int:
    box = box_for(settings)  # the mail holds a link: kept encrypted until sent
    org = directory["organization_id"]
    sent = 0
    for person in recipients(conn, org):
        link = issue_link(conn, settings, org, "recover_access", person["id"], directory["id"])
        sent += queue(
            conn,
            org,
            [person["email"]],
            f"Directory {directory['name']} cannot be reached",
            f"Roster cannot reach the directory {directory['name']} ({directory['id']}):\n{error}\n\n"
            "Directory users cannot sign in until this is fixed. To sign in and fix the configuration, "
            f"this link unlinks your own account from the directory and lets you set a local password "
            f"(it works once, for {settings.link_ttl_hours:g} hours):\n{link}\n",
            "access_lost",
            box=box,
        )
    return sent


def request_disable(conn: Connection, settings: Settings, directory_id: str) -> int:
    box = box_for(settings)  # the mail holds a link: kept encrypted until sent
    directory = get_directory(conn, directory_id)
    org = directory["organization_id"]
    admins = conn.execute(
        sa.select(accounts.c.id, accounts.c.email).where(
            accounts.c.organization_id == org, accounts.c.role == "admin", accounts.c.disabled.is_(False)
        )
    ).all()
    for admin in admins:
        link = issue_link(conn, settings, org, "confirm_disable", admin.id, directory_id)
        queue(
            conn,
            org,
            [admin.email],
            f"Confirm: disable directory {directory['name']}",
            f"Someone asked to disable the directory {directory['name']} ({directory_id}). Nothing changes "
            "until it is confirmed. Confirming unlinks every directory-managed account; each gets an e-mail "
            "to set a local password.\n"
            f"Confirm (works once, for {settings.link_ttl_hours:g} hours):\n{link}\n",
            "confirm_disable",
            box=box,
        )
    return len(admins)


def _expire_disable_links(conn: Connection, directory_id: str) -> None:
    conn.execute(
        sa.update(action_tokens)
        .where(
            action_tokens.c.directory_id == directory_id,
            action_tokens.c.kind == "confirm_disable",
            action_tokens.c.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )


def enable(conn: Connection, directory_id: str) -> dict[str, Any]:
    directory = get_directory(conn, directory_id)
    _expire_disable_links(conn, directory_id)
    if directory["state"] == "inactive":
        conn.execute(
            sa.update(directories)
            .where(directories.c.id == directory_id)
            .values(state="linking", cursor=None, updated_at=utcnow())
        )
    return get_directory(conn, directory_id)


def relinked(conn: Connection, org: str, account_ids: list[str], directory: dict[str, Any]) -> None:
    """Accounts linked again after the directory was disabled and enabled: tell each one."""
    rows = conn.execute(
        sa.select(accounts.c.id, accounts.c.email).where(
            accounts.c.id.in_(account_ids), accounts.c.unlinked_from == directory["id"]
        )
    ).all()
    for row in rows:
        queue(
            conn,
            org,
            [row.email],
            "Your account is managed by the directory again",
            f"The directory {directory['name']} is enabled again. Your account is directory-managed once "
            "more: sign in with your directory password.\n",
            "relinked",
        )
    if rows:
        conn.execute(
            sa.update(accounts).where(accounts.c.id.in_([r.id for r in rows])).values(unlinked_from=None)
        )


def perform(conn: Connection, settings: Settings, token: str, password: str | None) -> dict[str, Any]:
    box = box_for(settings)  # the mail holds a link: kept encrypted until sent
    action = look_up(conn, token)
    kind, org = action["kind"], action["organization_id"]
    if kind in ("recover_access", "reset_password"):
        if not password:
            raise ValueError("password: required to complete this link")
        password_hash = hash_password(password)
        _mark_used(conn, action["id"])
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.id == action["account_id"])
            .values(
                password_hash=password_hash, directory_id=None, directory_user_id=None, updated_at=utcnow()
            )
        )
        return {"done": kind, "account_id": action["account_id"]}
    if kind == "confirm_disable":
        _mark_used(conn, action["id"])
        directory = get_directory(conn, action["directory_id"])
        if directory["state"] == "inactive":
            raise LinkError("link_used", "this directory is already disabled")
        _expire_disable_links(conn, directory["id"])
        conn.execute(
            sa.update(directories)
            .where(directories.c.id == directory["id"])
            .values(state="inactive", updated_at=utcnow())
        )
        linked = conn.execute(
            sa.select(accounts.c.id, accounts.c.email).where(accounts.c.directory_id == directory["id"])
        ).all()
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.directory_id == directory["id"])
            .values(
                directory_id=None, directory_user_id=None, unlinked_from=directory["id"], updated_at=utcnow()
            )
        )
        # leavers stay disabled, now as an admin's decision that an admin can undo
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.unlinked_from == directory["id"], accounts.c.disabled_reason == "directory")
            .values(disabled_reason="admin")
        )
        for person in linked:
            link = issue_link(conn, settings, org, "reset_password", person.id, directory["id"])
            queue(
                conn,
                org,
                [person.email],
                "Set a password for your account",
                f"The directory {directory['name']} no longer manages your account. Set a password here "
                f"(it works once, for {settings.link_ttl_hours:g} hours):\n{link}\n",
                "password_reset",
                box=box,
            )
        return {"done": kind, "directory_id": directory["id"], "unlinked": len(linked)}
    raise LinkError("link_invalid", "this link is not valid")
