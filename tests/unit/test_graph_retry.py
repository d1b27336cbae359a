"""How long the Graph client waits before retrying a throttled or unavailable answer."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from roster.connectors.graph.client import MAX_WAIT, wait_for


def answer(retry_after: str | None) -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": retry_after} if retry_after is not None else {})


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.25", 0.25), ("0", 0.0), ("-5", 0.0), ("86400", MAX_WAIT), ("inf", MAX_WAIT)],
)
def test_seconds_are_honoured_within_the_cap(header: str, expected: float) -> None:
    assert wait_for(answer(header), attempt=0) == expected


def test_an_http_date_counts_from_now_even_without_a_zone() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= wait_for(answer(later), attempt=0) <= 30
    # a naive datetime is written with "-0000": UTC, without saying so
    naive = email.utils.format_datetime(email.utils.parsedate_to_datetime(later).replace(tzinfo=None))
    assert naive.endswith("-0000")
    assert 28 <= wait_for(answer(naive), attempt=0) <= 30


@pytest.mark.parametrize("header", [None, "", "soon", "nan", "Mon, 99 Foo 2026 99:99:99 GMT"])
def test_without_a_usable_header_the_wait_backs_off_with_jitter(header: str | None) -> None:
    waits = [wait_for(answer(header), attempt=a) for a in range(4)]
    assert [0.5 <= waits[0] <= 1, 1 <= waits[1] <= 2, 2 <= waits[2] <= 4, 4 <= waits[3] <= 8] == [True] * 4
