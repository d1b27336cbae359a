"""The domain package must stay pure: no I/O, no clock, no database, no network."""

import ast
from pathlib import Path

import roster.domain

FORBIDDEN = {
    "os",
    "socket",
    "sqlalchemy",
    "ldap",
    "httpx",
    "time",
    "datetime",
    "random",
    "subprocess",
    "pathlib",
    "requests",
    "asyncio",
    "threading",
    "fastapi",
}


def test_domain_imports_nothing_that_does_io() -> None:
    folder = Path(roster.domain.__file__).parent
    offenders = []
    for source in folder.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN or (name.startswith("roster.") and not name.startswith("roster.domain")):
                    offenders.append(f"{source.name}: {name}")
    assert offenders == []
