"""Every log line of the test suite, checked for every secret the suite created.

At start-up the suite records each secret as it is made: every ``secrets.token_urlsafe`` of 32
bytes or more (API keys, SCIM tokens, webhook secrets, link and setup-link tokens, console
sessions, sign-in state and codes), every ``secrets.token_hex`` of 16 or more, every Fernet key,
and the directory servers' bind passwords. Every record any logger handles at INFO and above
(uvicorn's access log too, whatever its handlers) is checked with its traceback; a record holding
a secret is a leak, and the test during which it was logged fails (``check``). Processes the
tests start (``roster serve``) are checked by their callers against the same secrets.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet

WINDOW = 12  # secrets are found by their first 12 characters, then compared whole
# HTTP client libraries log each request's method and URL; in the suite they are mostly the
# tests' stand-ins for a browser, whose URLs carry OAuth ``state`` and ``code`` by design
CLIENTS = ("httpx", "httpx2")
_RUNS = re.compile(r"[A-Za-z0-9_\-=!]{12,}")


class SecretWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._by_prefix: dict[str, set[str]] = {}
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()
        self.leaks: list[str] = []

    def add(self, secret: str, kind: str) -> None:
        if len(secret) >= WINDOW:
            with self._lock:
                self._by_prefix.setdefault(secret[:WINDOW], set()).add(secret)
                self._kinds[secret] = kind

    def found_in(self, text: str) -> list[str]:
        found = []
        for run in _RUNS.finditer(text):
            word = run.group(0)
            for i in range(len(word) - WINDOW + 1):
                for secret in self._by_prefix.get(word[i : i + WINDOW], ()):
                    if text.find(secret, run.start() + i) == run.start() + i:
                        found.append(secret)
        return found

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENTS:
            return
        try:
            text = record.getMessage()
        except Exception:  # a record that does not format is its logger's bug, not a leak
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        for secret in self.found_in(text):
            kind = self._kinds.get(secret, "secret")
            self.leaks.append(f"{record.name} logged a {kind} ({secret[:6]}…): {text[:300]}")


WATCH = SecretWatch()


def _recording(original: Callable[..., Any], kind: str, least: int) -> Callable[..., Any]:
    def made(nbytes: int | None = None) -> Any:
        value = original(nbytes) if nbytes is not None else original()
        if (nbytes or 32) >= least:
            WATCH.add(value, kind)
        return value

    return made


def install(fixed: dict[str, str]) -> None:
    """Record secrets as they are made (``fixed``: known ones, value -> kind) and watch logs."""
    secrets.token_urlsafe = _recording(secrets.token_urlsafe, "random token", 32)  # type: ignore[assignment]
    secrets.token_hex = _recording(secrets.token_hex, "random hex token", 16)  # type: ignore[assignment]
    generate = Fernet.generate_key

    def fernet_key() -> bytes:
        key = generate()
        WATCH.add(key.decode(), "secret key")
        return key

    Fernet.generate_key = staticmethod(fernet_key)  # type: ignore[method-assign]
    for value, kind in fixed.items():
        WATCH.add(value, kind)
    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    handle = logging.Logger.handle

    def watched(self: logging.Logger, record: logging.LogRecord) -> None:
        WATCH.handle(record)  # every record any logger handles, whatever its handlers
        handle(self, record)

    logging.Logger.handle = watched  # type: ignore[method-assign]


def check() -> list[str]:
    """The leaks logged since the last check (and forget them)."""
    leaks, WATCH.leaks = WATCH.leaks, []
    return leaks
