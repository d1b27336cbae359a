"""Sign-in throttling under concurrency: the attempt is counted before the password is checked, so
simultaneous guesses cannot all slip under the limit (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter

from roster.accounts.login import ACCOUNT_LIMIT, ADDRESS_LIMIT, login
from roster.accounts.service import create_account
from roster.runtime import Runtime
from roster.store import repo


def _at_once(count: int, attempt: object) -> Counter[str]:
    """Run ``attempt(i)`` in ``count`` threads released together; the reasons they got."""
    start = threading.Barrier(count)
    reasons: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        start.wait()
        reason = attempt(i)  # type: ignore[operator]
        with lock:
            reasons.append(reason)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return Counter(reasons)


def test_simultaneous_guesses_get_no_more_checks_than_the_limit(rt: Runtime) -> None:
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
        create_account(conn, org, "ada@acme.test", role="admin", password="the right password")
    reasons = _at_once(40, lambda i: login(rt, org, "ada@acme.test", f"guess {i}").reason)
    assert reasons["invalid_credentials"] <= ACCOUNT_LIMIT
    assert reasons["invalid_credentials"] + reasons["too_many_attempts"] == 40
    assert login(rt, org, "ada@acme.test", "the right password").reason == "too_many_attempts"  # locked out


def test_one_address_guessing_many_accounts_is_held_to_its_limit(rt: Runtime) -> None:
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
    reasons = _at_once(40, lambda i: login(rt, org, f"user{i}@acme.test", "guess", "192.0.2.7").reason)
    assert reasons["invalid_credentials"] <= ADDRESS_LIMIT
    assert reasons["too_many_attempts"] >= 40 - ADDRESS_LIMIT


def test_a_successful_sign_in_clears_the_accounts_count(rt: Runtime) -> None:
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
        create_account(conn, org, "ada@acme.test", role="admin", password="the right password")
    for _ in range(ACCOUNT_LIMIT - 1):
        assert login(rt, org, "ada@acme.test", "typo").reason == "invalid_credentials"
    assert login(rt, org, "ada@acme.test", "the right password").ok
    for _ in range(ACCOUNT_LIMIT):  # a fresh allowance
        assert login(rt, org, "ada@acme.test", "typo").reason == "invalid_credentials"
    assert login(rt, org, "ada@acme.test", "typo").reason == "too_many_attempts"
