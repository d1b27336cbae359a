"""Agents on the server side: one-time enrolment codes, enrolment, the proof on every request,
heartbeats, listing and revocation."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Connection

from roster.agent import ca, proof
from roster.crypto import SecretBox
from roster.ids import new_id
from roster.store import repo
from roster.store.db import as_utc, iso, utcnow
from roster.store.schema_access import agent_codes, agents

SILENT = timedelta(seconds=120)  # an agent quiet this long is "not responding" and gets no work
LIVE = timedelta(seconds=45)  # polled this recently (a poll lasts 20 s): trusted with a login
MIN_VERSION = (0, 1, 0)


class AgentRefused(Exception):
    """An enrolment or a request the server refuses; the message says why (never whose code)."""


@dataclass(frozen=True)
class Enrolled:
    agent_id: str
    certificate_pem: str
    ca_pem: str
    directory: Mapping[str, Any]


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def issue_code(conn: Connection, directory_id: str, ttl: timedelta) -> tuple[str, str]:
    """(the code, when it expires): for a directory connected through an agent."""
    directory = repo.get_directory(conn, directory_id)
    if (directory["config"] or {}).get("connection") != "agent":
        raise AgentRefused(f"connection: directory {directory_id} is not connected through an agent")
    code = "-".join(secrets.token_hex(3).upper() for _ in range(4))
    now = utcnow()
    conn.execute(
        sa.insert(agent_codes).values(
            id=_digest(code), directory_id=directory_id, created_at=now, expires_at=now + ttl
        )
    )
    return code, iso(now + ttl) or ""


def _check_version(version: str) -> None:
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        raise AgentRefused(f"version: {version!r} is not a version number") from None
    if parts < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        raise AgentRefused(f"version: this server needs roster {wanted} or newer on the agent; install it")


def enroll(
    conn: Connection, box: SecretBox, code: str, csr_pem: str, hostname: str, version: str
) -> Enrolled:
    """Spend a code: a certificate for the agent's own key. A used, expired or unknown code is
    refused alike."""
    _check_version(version)
    now = utcnow()
    c = agent_codes
    spent = conn.execute(
        sa.update(c)
        .where(c.c.id == _digest(code), c.c.used_at.is_(None), c.c.expires_at > now)
        .values(used_at=now)
        .returning(c.c.directory_id)
    ).first()
    if spent is None:
        raise AgentRefused("code: this enrolment code is unknown, used or expired; ask for a new one")
    directory = repo.get_directory(conn, spent.directory_id)
    agent_id = new_id("agent")
    certificate, key_columns = _certify(conn, box, csr_pem, agent_id, directory)
    conn.execute(
        sa.insert(agents).values(
            id=agent_id,
            directory_id=directory["id"],
            organization_id=directory["organization_id"],
            **key_columns,
            hostname=hostname[:255],
            version=version[:32],
            status="active",
            last_seen_at=None,  # healthy from its first heartbeat on
            created_at=now,
        )
    )
    return Enrolled(agent_id, certificate, ca.ca_pem(conn, box), directory)


def _certify(
    conn: Connection, box: SecretBox, csr_pem: str, agent_id: str, directory: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """(the signed certificate's PEM, the agent row's key columns) for the key in ``csr_pem``."""
    try:
        cert = ca.sign(conn, box, csr_pem, agent_id, directory["organization_id"], directory["id"])
    except ValueError as exc:
        raise AgentRefused(str(exc)) from None
    public = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    columns = {
        "public_key_pem": public.decode(),
        "cert_serial": format(cert.serial_number, "x"),
        "cert_expires_at": cert.not_valid_after_utc,
    }
    return cert.public_bytes(serialization.Encoding.PEM).decode(), columns


def renew(conn: Connection, box: SecretBox, agent: Mapping[str, Any], csr_pem: str) -> Enrolled:
    """A new certificate for the agent (for the key in ``csr_pem``), asked for with its current one."""
    directory = repo.get_directory(conn, agent["directory_id"])
    certificate, key_columns = _certify(conn, box, csr_pem, agent["id"], directory)
    conn.execute(sa.update(agents).where(agents.c.id == agent["id"]).values(**key_columns))
    return Enrolled(agent["id"], certificate, ca.ca_pem(conn, box), directory)


def authenticate(
    conn: Connection, headers: Mapping[str, str], method: str, target: str, body: bytes
) -> dict[str, Any]:
    """The agent whose proof this request carries; AgentRefused otherwise."""
    agent_id = headers.get(proof.AGENT.lower()) or ""
    row = conn.execute(sa.select(agents).where(agents.c.id == agent_id)).mappings().first()
    why = "unknown agent"
    if row is not None:
        why = (
            proof.verify(
                row["public_key_pem"],
                method,
                target,
                body,
                headers.get(proof.DATE.lower()) or "",
                headers.get(proof.SIGNATURE.lower()) or "",
            )
            or ""
        )
        if not why and row["status"] != "active":
            why = "this agent was revoked; enrol it again with a new code"
        elif not why:
            try:  # the version the agent runs now (it says so on every request)
                _check_version(headers.get(proof.VERSION.lower()) or "0")
            except AgentRefused as exc:
                why = str(exc)
        elif not why and (as_utc(row["cert_expires_at"]) or utcnow()) <= utcnow():
            why = "this agent's certificate expired; enrol it again with a new code"
    if why:
        raise AgentRefused(why)
    assert row is not None
    return dict(row)


def heartbeat(
    conn: Connection, agent_id: str, hostname: str | None, version: str | None, error: str | None
) -> None:
    values: dict[str, Any] = {"last_seen_at": utcnow(), "last_error": error}
    if hostname:
        values["hostname"] = hostname[:255]
    if version:
        values["version"] = version[:32]
    conn.execute(sa.update(agents).where(agents.c.id == agent_id).values(**values))


def revoke(conn: Connection, agent_id: str) -> None:
    found = conn.execute(sa.update(agents).where(agents.c.id == agent_id).values(status="revoked")).rowcount
    if not found:
        raise repo.NotFound(f"agent {agent_id} not found")


def listing(conn: Connection, directory_id: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(agents).order_by(agents.c.id)
    if directory_id is not None:
        q = q.where(agents.c.directory_id == directory_id)
    now = utcnow()
    out = []
    for row in conn.execute(q).mappings():
        seen = as_utc(row["last_seen_at"])
        healthy = row["status"] == "active" and seen is not None and now - seen < SILENT
        out.append(
            {
                "id": row["id"],
                "directory_id": row["directory_id"],
                "status": row["status"]
                if row["status"] != "active"
                else ("healthy" if healthy else "not_responding"),
                "hostname": row["hostname"],
                "version": row["version"],
                "last_seen_at": iso(seen),
                "last_error": row["last_error"],
                "certificate_expires_at": iso(as_utc(row["cert_expires_at"])),
            }
        )
    return out
