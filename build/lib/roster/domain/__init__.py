"""Pure domain logic: no I/O imports (tests/unit/test_purity.py enforces it)."""
