"""PairRuns: membership pairs as sorted runs behave as the set of pairs they stand for."""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from roster.domain.pairs import PairRuns, difference

names = st.sampled_from(["a", "b", "c", "d", "e"])
pair_sets = st.frozensets(st.tuples(names, names), max_size=20)


@given(pair_sets)
def test_runs_are_the_set_sorted(pairs: frozenset[tuple[str, str]]) -> None:
    runs = PairRuns.of(pairs)
    assert list(runs) == sorted(pairs)
    assert len(runs) == len(pairs) and bool(runs) == bool(pairs)
    assert runs == pairs and pairs == runs and runs == tuple(sorted(pairs))
    assert all(p in runs for p in pairs)
    assert ("z", "a") not in runs and "ab" not in runs and ("a",) not in runs
    assert pickle.loads(pickle.dumps(runs)) == runs
    assert runs - frozenset() == pairs  # set operators give plain frozensets


@given(pair_sets, pair_sets, st.none() | st.frozensets(names))
def test_difference_is_the_set_difference(
    wanted: frozenset[tuple[str, str]], held: frozenset[tuple[str, str]], only: frozenset[str] | None
) -> None:
    """``only``: the groups compared (held pairs come only from those, as the store loads them)."""
    if only is not None:
        held = frozenset(p for p in held if p[0] in only)
    added, removed = difference(PairRuns.of(wanted), PairRuns.of(held), only)
    in_scope = wanted if only is None else frozenset(p for p in wanted if p[0] in only)
    assert list(added) == sorted(in_scope - held)
    assert list(removed) == sorted(held - in_scope)


def test_duplicates_and_empty_runs_count_once() -> None:
    runs = PairRuns({"g": ["b", "a", "b"], "h": []})
    assert list(runs) == [("g", "a"), ("g", "b")] and list(runs.groups()) == ["g"]
    assert runs.members("h") == () and runs.members("g") == ("a", "b")
