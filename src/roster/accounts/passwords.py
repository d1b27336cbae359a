"""Local passwords: argon2id hashes; verification takes the same time for unknown accounts."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
MIN_LENGTH = 8


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password: must be at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


@cache
def _dummy() -> str:
    """A hash to verify against when there is none. Made once, not at import (every CLI command
    would pay a hash); the server makes it at start-up (``warm_up``), so that no request does."""
    return _hasher.hash("roster: a password nobody has")


def verify(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; with no hash, spends the same time and says False."""
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def warm_up() -> None:
    _dummy()
