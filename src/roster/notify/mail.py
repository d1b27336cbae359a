"""Mail goes into ``mail_outbox`` with the state change it reports; ``deliver`` sends it over SMTP.

Without an SMTP server configured (the embedded default), mail stays in the outbox,
where an admin reads it through the API (``GET /api/v1/organizations/{id}/mail``)
or the CLI (``roster mail list``).

A mail that carries a link that acts (``/actions/...``) is kept encrypted with the secret key
(``queue(..., box=...)``), like bind passwords: a copy of the database does not hold a usable
link. Once sent, its body keeps the text with the link cut (the recipient's mailbox has it).
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from roster.crypto import SecretBox, load_key
from roster.ids import new_id
from roster.settings import Settings
from roster.store.db import utcnow
from roster.store.schema import mail_outbox

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10


SEALED = "sealed:"  # a body kept encrypted: it holds a link that acts
_LINK = re.compile(r"/actions/\S+")


def box_for(settings: Settings) -> SecretBox:
    return SecretBox(load_key(settings))


def redact_links(body: str) -> str:
    return _LINK.sub("/actions/[sent by e-mail]", body)


def readable(body: str, box: SecretBox | None) -> str:
    """A stored body as its recipient gets it (``box`` opens a sealed one)."""
    if not body.startswith(SEALED):
        return body
    if box is None:
        return "[sealed: holds a link; readable with the secret key]"
    return box.open(body[len(SEALED) :])


def queue(
    conn: Connection,
    organization_id: str,
    recipients: Iterable[str],
    subject: str,
    body: str,
    kind: str,
    box: SecretBox | None = None,
) -> int:
    """Queue one mail per recipient; ``box``: keep the body encrypted (it holds a link that acts)."""
    if box is not None:
        body = SEALED + box.seal(body)
    rows = [
        {
            "id": new_id("mail"),
            "organization_id": organization_id,
            "recipient": to,
            "subject": subject,
            "body": body,
            "kind": kind,
            "created_at": utcnow(),
            "attempts": 0,
        }
        for to in sorted(set(recipients))
    ]
    if rows:
        conn.execute(sa.insert(mail_outbox), rows)
    return len(rows)


def deliver(engine: Engine, settings: Settings) -> int:
    """Send what is pending; returns how many went out. Failures stay queued for the next call."""
    if not settings.smtp_host:
        return 0
    with engine.connect() as conn:
        pending = list(
            conn.execute(
                sa.select(mail_outbox)
                .where(mail_outbox.c.sent_at.is_(None), mail_outbox.c.attempts < MAX_ATTEMPTS)
                .order_by(mail_outbox.c.id)
                .limit(500)
            ).mappings()
        )
    if not pending:
        return 0
    sent = 0
    try:
        smtp = _connect(settings)
    except (OSError, smtplib.SMTPException) as exc:
        _failed(engine, [p["id"] for p in pending], f"cannot reach {settings.smtp_host}: {exc}")
        return 0
    with smtp:
        for mail in pending:
            with engine.begin() as conn:  # claim it: another process's deliver() skips it now
                claimed = conn.execute(
                    sa.update(mail_outbox)
                    .where(
                        mail_outbox.c.id == mail["id"],
                        mail_outbox.c.sent_at.is_(None),
                        mail_outbox.c.attempts == mail["attempts"],
                    )
                    .values(attempts=mail_outbox.c.attempts + 1, error="sending")
                ).rowcount
            if claimed != 1:
                continue
            message = EmailMessage()
            message["From"] = settings.mail_sender
            message["To"] = mail["recipient"]
            message["Subject"] = mail["subject"]
            text = readable(mail["body"], box_for(settings) if mail["body"].startswith(SEALED) else None)
            message.set_content(text)
            try:
                smtp.send_message(message)
            except smtplib.SMTPException as exc:
                _failed(engine, [mail["id"]], str(exc), count=False)  # the claim counted the attempt
                continue
            with engine.begin() as conn:
                conn.execute(
                    sa.update(mail_outbox)
                    .where(mail_outbox.c.id == mail["id"])
                    .values(sent_at=utcnow(), error=None, body=redact_links(text))
                )
            sent += 1
    return sent


def _connect(settings: Settings) -> smtplib.SMTP:
    host, port = settings.smtp_host or "", settings.smtp_port
    if settings.smtp_security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=30, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=30)
        if settings.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_username:
        smtp.login(settings.smtp_username, settings.smtp_password or "")
    return smtp


def _failed(engine: Engine, ids: list[str], error: str, count: bool = True) -> None:
    log.warning("mail delivery failed: %s", error)
    values: dict[str, object] = {"error": error[:2000]}
    if count:
        values["attempts"] = mail_outbox.c.attempts + 1
    with engine.begin() as conn:
        conn.execute(sa.update(mail_outbox).where(mail_outbox.c.id.in_(ids)).values(**values))
