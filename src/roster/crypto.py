"""Secrets at rest and API keys.

Directory secrets (bind passwords) are encrypted with Fernet (AES-128-CBC plus
HMAC-SHA256) under a key from settings or a key file written by ``roster init``.
API keys are random 256-bit tokens; only their SHA-256 digest is stored, and
comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from roster.settings import Settings

API_KEY_PREFIX = "sk_roster_"


class SecretKeyMissing(RuntimeError):
    pass


def generate_key_file(path: Path) -> bool:
    """Write a new key to ``path`` (mode 0600) unless one exists; True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
    return True


def load_key(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    try:
        return settings.key_file.read_bytes().strip()
    except FileNotFoundError:
        raise SecretKeyMissing(
            f"no secret key: set ROSTER_SECRET_KEY or run `roster init` to create {settings.key_file}"
        ) from None


class SecretBox:
    """Seals with the first key; opens with any (``new,old`` while a rotation is under way).
    ``reload`` reads the keys again when a token does not open: after ``roster rotate-key``,
    running processes pick up the new key file without a restart."""

    def __init__(self, keys: bytes, reload: Callable[[], bytes] | None = None) -> None:
        self._keys = keys
        self._fernet = _fernets(keys)
        self._reload = reload

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            if self._reload is not None and (keys := self._reload()) != self._keys:
                self._keys, self._fernet = keys, _fernets(keys)
                return self.open(token)
            raise SecretKeyMissing("a stored secret cannot be decrypted with the configured key") from None

    def reseal(self, token: str) -> str:
        """``token`` sealed again with the first key (opened with any)."""
        return self.seal(self.open(token))


def _fernets(keys: bytes) -> MultiFernet:
    found = [k for k in re.split(rb"[\s,]+", keys) if k]
    if not found:
        raise SecretKeyMissing("the secret key is empty")
    try:
        return MultiFernet([Fernet(k) for k in found])
    except ValueError:
        raise SecretKeyMissing(
            "the secret key is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically (mode 0600): a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n".join(keys) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
