"""The command line's shape: every command takes --json and documents itself, and every setting
is documented (docs/settings.md is the settings model's own text)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from roster.cli import main
from roster.settings_doc import markdown, rows

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def commands(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_command_takes_json_and_says_what_it_does() -> None:
    runner = CliRunner()
    seen = 0
    for path, command in commands():
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "--json" in result.output, f"roster {' '.join(path)} takes no --json"
        assert command.help, f"roster {' '.join(path)} has no help text"
        seen += 1
    assert seen > 55


def test_errors_with_json_are_json_on_stderr_with_the_exit_code() -> None:
    result = CliRunner().invoke(main, ["directory", "create", "--json", "--org", "x"])
    assert result.exit_code == 2
    assert '"field": "type"' in result.stderr and '"code": "usage"' in result.stderr


def test_every_setting_is_documented_and_the_page_is_current() -> None:
    assert all(r["description"] for r in rows()), [r["variable"] for r in rows() if not r["description"]]
    assert DOCS.read_text() == markdown(), (
        "docs/settings.md is stale: python -m roster.settings_doc > docs/settings.md"
    )
