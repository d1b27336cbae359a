"""Shared fixtures: real slapd, SQLite and PostgreSQL stores, a Roster runtime."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from roster.demo.slapd import SLAPD, Slapd, SlapdError
from roster.runtime import Runtime, open_runtime
from roster.settings import Settings
from tests.support.ldap_tree import Tree
from tests.support.servers import POSTGRES_URL, unavailable

BASE_LDIF = """dn: dc=example,dc=com
objectClass: top
objectClass: dcObject
objectClass: organization
o: example.com
dc: example
"""


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    if not Path(SLAPD).exists():
        unavailable("OpenLDAP slapd", f"{SLAPD} is not installed (scripts/test installs Debian's slapd)")
    folder = tmp_path_factory.mktemp("slapd")
    server = Slapd(folder)
    server.configure()
    (folder / "base.ldif").write_text(BASE_LDIF)
    server.load(folder / "base.ldif")
    try:
        server.start()
    except SlapdError as exc:
        unavailable("OpenLDAP slapd", str(exc))
    yield server
    server.stop()


@pytest.fixture
def tree(slapd: Slapd) -> Iterator[Tree]:
    t = Tree(slapd)
    yield t
    t.close()


def _postgres_schema_url() -> Iterator[str]:
    engine = sa.create_engine(POSTGRES_URL)
    schema = f"roster_test_{secrets.token_hex(6)}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        unavailable("PostgreSQL", f"{POSTGRES_URL}: {exc.orig}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'roster.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'roster.db'}"


def make_runtime(url: str, tmp_path: Path, **settings: object) -> Runtime:
    return open_runtime(
        Settings(
            database_url=url, secret_key=Fernet.generate_key().decode(), key_file=tmp_path / "k", **settings
        )  # type: ignore[arg-type]
    )


@pytest.fixture
def rt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(database_url, tmp_path)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def sqlite_rt(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(sqlite_url, tmp_path)
    yield runtime
    runtime.engine.dispose()


def pytest_report_header() -> str:
    found = SLAPD if shutil.which("slapd") or Path(SLAPD).exists() else "missing"
    return f"slapd: {found}; postgres: {POSTGRES_URL}"
