"""A full read's decoded users, written to a temporary file in batches instead of held in memory.

A first sync of 100,000 users would otherwise hold every decoded user (about 1 KB each with
its raw attributes) from the read until the run ends. The spool keeps only an index (external
id -> offset and length) in memory; each record is read back when the reconciler or the writer
asks for it. The file has no name (``tempfile.TemporaryFile``): nothing is left behind when the
process ends, however it ends. Nothing in the store is written before the run's one
transaction, so readers and other writers never see half a run.
"""

from __future__ import annotations

import marshal
import os
import tempfile
import weakref
from collections.abc import Iterator, MutableMapping
from dataclasses import fields

from roster.domain.records import DirectoryUser

_FIELDS = tuple(f.name for f in fields(DirectoryUser))


class UserSpool(MutableMapping[str, DirectoryUser]):
    """A mapping of external id -> DirectoryUser backed by an unnamed temporary file."""

    def __init__(self, batch: int = 1000) -> None:
        # open as long as the spool lives: close(), or the finalizer when the spool is dropped
        self._file = tempfile.TemporaryFile(prefix="roster-spool-", buffering=0)  # noqa: SIM115
        self._fd = self._file.fileno()
        self._closed = weakref.finalize(self, self._file.close)  # when the run drops the snapshot
        self._index: dict[str, tuple[int, int]] = {}  # external id -> (offset, length)
        self._pending: dict[str, DirectoryUser] = {}  # written at the next flush
        self._end = 0
        self._batch = batch

    def __setitem__(self, key: str, user: DirectoryUser) -> None:
        self._index.pop(key, None)
        self._pending[key] = user
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        start, chunks = self._end, []
        for key, user in self._pending.items():
            data = marshal.dumps(tuple(getattr(user, name) for name in _FIELDS))
            self._index[key] = (self._end, len(data))
            self._end += len(data)
            chunks.append(data)
        os.pwrite(self._fd, b"".join(chunks), start)
        self._pending = {}

    def __getitem__(self, key: str) -> DirectoryUser:
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        offset, length = self._index[key]
        return DirectoryUser(*marshal.loads(os.pread(self._fd, length, offset)))

    def __delitem__(self, key: str) -> None:
        if self._pending.pop(key, None) is None:
            del self._index[key]

    def __contains__(self, key: object) -> bool:
        return key in self._index or key in self._pending

    def __iter__(self) -> Iterator[str]:
        yield from self._index
        yield from self._pending

    def __len__(self) -> int:
        return len(self._index) + len(self._pending)

    def close(self) -> None:
        self._closed()

    def __repr__(self) -> str:
        return f"UserSpool({len(self)} users)"
