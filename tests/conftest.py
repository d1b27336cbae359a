"""Shared fixtures: real slapd, SQLite and PostgreSQL stores, a Roster runtime."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from roster.demo.pki import make_pki
from roster.demo.samba import SambaDC, SambaError, missing_requirements
from roster.demo.slapd import SLAPD, Slapd, SlapdError
from roster.runtime import Runtime, open_runtime
from roster.settings import Settings
from tests.support.ad_tree import AdTree
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


@pytest.fixture(scope="session")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    folder = tmp_path_factory.mktemp("tls-slapd")
    server = Slapd(folder, tls=make_pki(folder))
    try:
        server.configure()
        (folder / "base.ldif").write_text(
            BASE_LDIF + "\ndn: uid=ada,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
            "uid: ada\ncn: Ada\nsn: L\nmail: ada@example.com\n"
        )
        server.load(folder / "base.ldif")
        server.start()
    except SlapdError as exc:
        unavailable("OpenLDAP slapd with TLS", str(exc))
    yield server
    server.stop()


BIG_GROUP_SIZE = 5000


def _big_group_ldif(dc: SambaDC) -> str:
    """OU=Roster (per-test OUs go inside) and OU=Big: 5,000 users in one group."""
    base = dc.base_dn
    parts = [
        f"dn: OU=Roster,{base}\nobjectClass: organizationalUnit\n",
        f"dn: OU=Big,{base}\nobjectClass: organizationalUnit\n",
    ]
    for i in range(BIG_GROUP_SIZE):
        parts.append(
            f"dn: CN=big{i:05d},OU=Big,{base}\nobjectClass: user\nsAMAccountName: big{i:05d}\n"
            f"mail: big{i:05d}@example.com\nuserAccountControl: 544\n"
        )
    members = "".join(f"member: CN=big{i:05d},OU=Big,{base}\n" for i in range(BIG_GROUP_SIZE))
    parts.append(f"dn: CN=big-group,OU=Big,{base}\nobjectClass: group\nsAMAccountName: big-group\n{members}")
    return "\n".join(parts)


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """A real Samba AD DC, provisioned once per test session (about 20 s with its fixtures)."""
    why = missing_requirements()
    if why:
        unavailable("Samba AD DC", why)
    dc = SambaDC(tmp_path_factory.mktemp("samba") / "dc")
    try:
        dc.provision()
        dc.samba_tool(
            "domain",
            "passwordsettings",
            "set",
            "--account-lockout-threshold=3",
            "--account-lockout-duration=30",
            "--reset-account-lockout-after=30",
            "--complexity=off",
        )
        dc.ldbadd(_big_group_ldif(dc))
        dc.start()
    except SambaError as exc:
        dc.stop()
        unavailable("Samba AD DC", str(exc))
    yield dc
    dc.stop()


@pytest.fixture
def ad_tree(samba_dc: SambaDC) -> Iterator[AdTree]:
    t = AdTree(samba_dc)
    yield t
    t.close()


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


def pytest_configure(config: pytest.Config) -> None:
    from roster.demo.samba import SambaDC
    from roster.demo.slapd import Slapd as SlapdServer
    from tests.support import secret_watch

    fixed = {SlapdServer.admin_password: "bind password", SambaDC.admin_password: "bind password"}
    secret_watch.install(fixed)


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[None]:
    """Fails the test during which any logger wrote a secret the suite created."""
    import logging

    from tests.support import secret_watch

    secret_watch.check()
    if logging.getLogger().level > logging.INFO:  # a CLI test configured logging as a command does
        logging.getLogger().setLevel(logging.INFO)
    yield
    leaks = secret_watch.check()
    assert not leaks, "secrets in the log:\n" + "\n".join(leaks)
