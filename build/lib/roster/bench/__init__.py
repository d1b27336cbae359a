"""Benchmarks (``scripts/bench``); not part of the test suite. Results go to bench/results.json."""
