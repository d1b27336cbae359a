"""Roster's agent CA: made on first use, its key sealed in the store (every replica shares it). It
signs each enrolled agent's certificate (subject: the agent, its organization and directory);
the agent's private key never leaves the agent's host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Connection

from roster.crypto import SecretBox
from roster.store.db import utcnow
from roster.store.schema_access import agent_ca

CERT_DAYS = 30  # agents renew with their current certificate well before this


def _load(conn: Connection, box: SecretBox) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    row = conn.execute(sa.select(agent_ca).where(agent_ca.c.id == "default")).first()
    if row is None:
        _create(conn, box)
        row = conn.execute(sa.select(agent_ca).where(agent_ca.c.id == "default")).one()
    cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
    key = serialization.load_pem_private_key(box.open(row.key_sealed).encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _create(conn: Connection, box: SecretBox) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Roster agent CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    conn.execute(
        sa.insert(agent_ca).values(
            id="default",
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_sealed=box.seal(pem.decode()),
            created_at=utcnow(),
        )
    )


def ca_pem(conn: Connection, box: SecretBox) -> str:
    return _load(conn, box)[0].public_bytes(serialization.Encoding.PEM).decode()


def sign(
    conn: Connection, box: SecretBox, csr_pem: str, agent_id: str, organization_id: str, directory_id: str
) -> x509.Certificate:
    """A certificate for the key in ``csr_pem`` (its signature checked); the subject is Roster's."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise ValueError("csr: is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise ValueError("csr: its signature does not match its key")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise ValueError("csr: the key must be an EC P-256 key")
    ca_cert, ca_key = _load(conn, box)
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, agent_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, directory_id),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
