"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The `roster` command with its own SQLite file and key file, after `roster init`."""
    c = Cli(tmp_path)
    assert c.ok("init")["key_created"] is True
    return c
