"""A password sealed to one agent's public key (ECIES: an ephemeral P-256 key agreement, HKDF-SHA256,
AES-256-GCM), so that only that agent can read it; the server never stores it readable."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"roster agent login v1"


def _key(shared: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(shared)


def seal(public_key_pem: str, secret: str) -> str:
    recipient = serialization.load_pem_public_key(public_key_pem.encode())
    assert isinstance(recipient, ec.EllipticCurvePublicKey)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    nonce = os.urandom(12)
    box = AESGCM(_key(ephemeral.exchange(ec.ECDH(), recipient)))
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    sealed = box.encrypt(nonce, secret.encode(), point)
    return ".".join(base64.urlsafe_b64encode(p).decode() for p in (point, nonce, sealed))


def open_sealed(key: ec.EllipticCurvePrivateKey, sealed: str) -> str:
    point, nonce, data = (base64.urlsafe_b64decode(p) for p in sealed.split("."))
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    return AESGCM(_key(key.exchange(ec.ECDH(), sender))).decrypt(nonce, data, point).decode()
