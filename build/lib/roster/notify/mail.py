"""Mail goes into ``mail_outbox`` with the state change it reports; ``deliver`` sends it over SMTP.

Without an SMTP server configured (the embedded default), mail stays in the outbox,
where an admin reads it through the API (``GET /api/v1/organizations/{id}/mail``)
or the CLI (``roster mail list``).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from roster.ids import new_id
from roster.settings import Settings
from roster.store.db import utcnow
from roster.store.schema import mail_outbox

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10


def queue(
    conn: Connection, organization_id: str, recipients: Iterable[str], subject: str, body: str, kind: str
) -> int:
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
            message.set_content(mail["body"])
            try:
                smtp.send_message(message)
            except smtplib.SMTPException as exc:
                _failed(engine, [mail["id"]], str(exc), count=False)  # the claim counted the attempt
                continue
            with engine.begin() as conn:
                conn.execute(
                    sa.update(mail_outbox)
                    .where(mail_outbox.c.id == mail["id"])
                    .values(sent_at=utcnow(), error=None)
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
