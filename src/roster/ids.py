"""Prefixed, time-ordered, URL-safe ids: ``directory_user_01JD3...``.

The part after the prefix is a ULID (48-bit millisecond time, 80 bits of
randomness, Crockford base32), made monotonic within a process so that ids
created in one millisecond still sort in creation order. Ids of one kind sort
by creation time as plain strings, which lets API cursors be ids.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0

PREFIXES = frozenset(
    {
        "org",
        "directory",
        "directory_user",
        "directory_group",
        "event",
        "sync_run",
        "key",
        "log",
        "account",
        "group",
        "mail",
        "action",
        "webhook",
        "delivery",
        "job",
        "scim_request",
        "agent",
        "agent_task",
        "operator",
    }
)


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def ulid(now_ms: int | None = None) -> str:
    """A monotonic ULID string (26 characters)."""
    global _last_ms, _last_rand
    with _lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand >= 1 << 80:  # pragma: no cover - 2^80 ids in one millisecond
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
        _last_ms, _last_rand = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)


_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]  # 10 bits -> two characters


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ulid()}"


def _decode(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 32 + _ALPHABET.index(ch)
    return value


def new_ids(prefix: str, count: int, after: str | None = None) -> list[str]:
    """``count`` ids in increasing order, cheaper than calling new_id in a loop.

    With ``after`` (an id of the same kind, say the newest one stored), every new id
    sorts after it even if it was made on a host whose clock runs ahead of ours.
    """
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    global _last_ms, _last_rand
    if count <= 0:
        return []
    with _lock:
        if after is not None and has_prefix(after, prefix):
            tail = after[len(prefix) + 1 :]
            floor = (_decode(tail[:10]), _decode(tail[10:]))
            if floor >= (_last_ms, _last_rand):
                _last_ms, _last_rand = floor
        ms = max(int(time.time() * 1000), _last_ms)
        rand = _last_rand + 1 if ms == _last_ms else int.from_bytes(os.urandom(10), "big") >> 1
        if rand + count >= 1 << 80:  # pragma: no cover
            ms += 1
            rand = 0
        _last_ms, _last_rand = ms, rand + count - 1
    head = f"{prefix}_{_encode(ms, 10)}"
    out = []
    high_cache: dict[int, str] = {}
    pairs = _PAIRS
    for value in range(rand, rand + count):
        high = value >> 40
        prefix_part = high_cache.get(high)
        if prefix_part is None:
            prefix_part = high_cache[high] = head + _encode(high, 8)
        low = value & 0xFFFFFFFFFF
        out.append(
            prefix_part
            + pairs[low >> 30]
            + pairs[(low >> 20) & 1023]
            + pairs[(low >> 10) & 1023]
            + pairs[low & 1023]
        )
    return out


def has_prefix(value: str, prefix: str) -> bool:
    rest = value[len(prefix) + 1 :] if value.startswith(prefix + "_") else ""
    return len(rest) == 26 and all(c in _ALPHABET for c in rest)
