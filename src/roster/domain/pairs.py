"""(group, member) pairs held as one sorted run of member ids per group.

A first sync of 1,000,000 memberships held as a set of pair tuples costs about 90 MB; held as
runs, the same pairs cost about 9 MB (one pointer per member), and they iterate in sorted
order without sorting again. ``PairRuns`` is a read-only set of pairs that iterates sorted by
group, then member; it also equals a sorted tuple or list of the same pairs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Mapping, Set
from typing import Any

Pair = tuple[str, str]


class PairRuns(Set[Pair]):
    __slots__ = ("_runs", "_size")

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> Set[Any]:  # what set operators return: a frozenset
        return frozenset(it)

    def __init__(self, runs: Mapping[str, Iterable[str]] | None = None) -> None:
        """``runs``: group -> its members (any order, duplicates count once; empty runs dropped)."""
        items = runs.items() if runs else ()
        self._runs: dict[str, tuple[str, ...]] = {
            g: members for g, ms in sorted(items) if (members := tuple(sorted(set(ms))))
        }
        self._size = sum(len(ms) for ms in self._runs.values())

    @classmethod
    def of(cls, pairs: Iterable[Pair]) -> PairRuns:
        """The runs of any collection of pairs (a ``PairRuns`` is returned as it is)."""
        if isinstance(pairs, PairRuns):
            return pairs
        grouped: dict[str, list[str]] = {}
        for group, member in pairs:
            grouped.setdefault(group, []).append(member)
        return cls(grouped)

    @classmethod
    def from_sorted(cls, runs: Mapping[str, Iterable[str]]) -> PairRuns:
        """Runs whose members are sorted and unique already (taken in order from other runs)."""
        out = cls.__new__(cls)
        out._runs = {g: members for g, ms in sorted(runs.items()) if (members := tuple(ms))}
        out._size = sum(len(ms) for ms in out._runs.values())
        return out

    def runs(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(group, its members sorted), groups sorted."""
        return iter(self._runs.items())

    def members(self, group: str) -> tuple[str, ...]:
        return self._runs.get(group, ())

    def groups(self) -> Collection[str]:
        return self._runs.keys()

    def __iter__(self) -> Iterator[Pair]:
        for group, members in self._runs.items():
            for member in members:
                yield group, member

    def __len__(self) -> int:
        return self._size

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        members = self._runs.get(pair[0], ())
        i = bisect_left(members, pair[1])
        return i < len(members) and members[i] == pair[1]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PairRuns):
            return self._runs == other._runs
        if isinstance(other, (set, frozenset)):
            return len(other) == self._size and all(p in self for p in other)
        if isinstance(other, (tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._runs.items()))

    def __repr__(self) -> str:
        return f"PairRuns({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return PairRuns, (self._runs,)


EMPTY = PairRuns()


def difference(
    wanted: PairRuns, held: PairRuns, only: Collection[str] | None = None
) -> tuple[PairRuns, PairRuns]:
    """(added, removed): the pairs of ``wanted`` not in ``held``, and of ``held`` not in ``wanted``.
    ``only``: compare these groups only (the others are known to be equal)."""
    added: dict[str, Iterable[str]] = {}
    removed: dict[str, Iterable[str]] = {}
    for group, members in wanted.runs():
        if only is not None and group not in only:
            continue
        before = held.members(group)
        if not before:
            added[group] = members
        elif before != members:
            old = set(before)
            added[group] = [m for m in members if m not in old]
    for group, before in held.runs():
        now = set(wanted.members(group))
        gone = [m for m in before if m not in now]
        if gone:
            removed[group] = gone
    return PairRuns.from_sorted(added), PairRuns.from_sorted(removed)
