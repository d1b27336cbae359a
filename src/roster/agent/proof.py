"""A signed proof on every agent request, bound to the agent's own key (it survives a TLS-terminating
proxy in front of Roster, which mutual TLS would not).

The agent signs ``METHOD\\nPATH?QUERY\\nUNIX-TIME\\nSHA-256(BODY)`` with its EC P-256 key; the
server checks the signature with the public key it certified at enrolment, that the agent is not
revoked and its certificate not expired, and that the time is within ``SKEW`` seconds of its own.
"""

from __future__ import annotations

import base64
import hashlib
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

AGENT, DATE, SIGNATURE = "Roster-Agent", "Roster-Agent-Date", "Roster-Agent-Signature"
VERSION = "Roster-Agent-Version"
SKEW = 300


def _message(method: str, target: str, date: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{target}\n{date}\n{hashlib.sha256(body).hexdigest()}".encode()


def sign(
    key: ec.EllipticCurvePrivateKey, agent_id: str, method: str, target: str, body: bytes
) -> dict[str, str]:
    """The headers that prove this request comes from ``agent_id``; ``target`` is path and query."""
    date = str(int(time.time()))
    signature = key.sign(_message(method, target, date, body), ec.ECDSA(hashes.SHA256()))
    return {AGENT: agent_id, DATE: date, SIGNATURE: base64.urlsafe_b64encode(signature).decode()}


def verify(
    public_key_pem: str, method: str, target: str, body: bytes, date: str, signature: str
) -> str | None:
    """None when the proof holds, else why not."""
    try:
        when = int(date)
    except ValueError:
        return "the request's date is not a number"
    if abs(time.time() - when) > SKEW:
        return f"the request's date is more than {SKEW} s from the server's clock"
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "the agent's key is not an EC key"
    try:
        key.verify(
            base64.urlsafe_b64decode(signature),
            _message(method, target, date, body),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError):
        return "the request's signature does not match the agent's key"
    return None
