"""Every setting as an operator meets it: the environment variable, its default and what it does,
made from the settings model itself (``roster settings env``, ``docs/settings.md``)."""

from __future__ import annotations

from typing import Any

from roster.settings import Settings

HEADER = """# Settings

Every setting is an environment variable (`ROSTER_` and the name in capitals). This page is made
from the settings model (`python -m roster.settings_doc > docs/settings.md`; a test keeps it in
step); `roster settings env` prints the same, with the values in effect.

| Variable | Default | What it does |
|---|---|---|
"""


def rows() -> list[dict[str, Any]]:
    found = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        found.append(
            {
                "variable": f"ROSTER_{name.upper()}",
                "default": "" if default is None else str(default),
                "description": field.description or "",
            }
        )
    return found


def markdown() -> str:
    lines = [
        f"| `{r['variable']}` | {('`' + r['default'] + '`') if r['default'] else '(none)'} | "
        f"{r['description'].replace('|', '/')} |"
        for r in rows()
    ]
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
