"""The suite's log watch finds a secret wherever a logger writes it (the check can fail)."""

from __future__ import annotations

import logging

from roster.crypto import new_api_key
from roster.events.endpoints import new_secret
from tests.support import secret_watch


def test_a_logged_api_key_is_found_whatever_the_loggers_handlers() -> None:
    key, hook = new_api_key(), new_secret()
    quiet = logging.getLogger("uvicorn.access")
    before = quiet.propagate, quiet.level, quiet.disabled
    quiet.propagate, quiet.disabled = False, False  # as uvicorn configures it
    quiet.setLevel(logging.INFO)
    try:
        logging.getLogger("roster.test").info("GET /x?key=%s", key)
        quiet.info('127.0.0.1 - "POST /hooks HTTP/1.1" 200 %s', hook)
        logging.getLogger("roster.test").debug("below INFO: %s", key)  # not a record at this level
    finally:
        quiet.propagate, quiet.disabled = before[0], before[2]
        quiet.setLevel(before[1])
    leaks = secret_watch.check()
    assert len(leaks) == 2 and leaks[0].startswith("roster.test logged a random token")
    assert leaks[1].startswith("uvicorn.access logged")


def test_a_traceback_holding_a_secret_is_found() -> None:
    key = new_api_key()
    try:
        raise ValueError(f"bad key {key}")
    except ValueError:
        logging.getLogger("roster.test").exception("failed")
    assert len(secret_watch.check()) == 1
    logging.getLogger("roster.test").info("an id is not a secret: %s", key[:10])
    assert secret_watch.check() == []
