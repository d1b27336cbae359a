"""The store on SQLite and PostgreSQL: migrations match the tables; a failed apply leaves nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import roster.sync.ingest as ingest_module
from roster.connectors.base import ConnectorError, FailureReason, Progress
from roster.domain.mapping import AttributeMapping, decode_attributes, map_user
from roster.domain.records import DirectoryUser, Snapshot
from roster.domain.snapshot import SnapshotBuilder
from roster.runtime import Runtime
from roster.store import repo
from roster.store.db import migrate
from roster.store.schema import metadata
from roster.sync.pipeline import run_sync
from tests.conftest import make_runtime
from tests.support.helpers import dump, new_org


def test_migrations_produce_exactly_the_declared_schema(rt: Runtime) -> None:
    migrate(rt.engine)  # a second upgrade is a no-op
    with rt.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_head_names_the_newest_migration_and_an_older_store_is_upgraded(tmp_path: Path) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from roster.store.db import HEAD, alembic_config, current_revision, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    assert ScriptDirectory.from_config(alembic_config(engine)).get_current_head() == HEAD
    assert current_revision(engine) is None
    command.upgrade(alembic_config(engine), "0011")
    migrate(engine)  # not at HEAD: the quick check must not skip the upgrade
    assert current_revision(engine) == HEAD


def test_upgrading_a_filled_store_fills_in_normalized_dns(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from alembic import command

    from roster.store.db import alembic_config, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0008")  # the schema before users kept normalized DNs
    now = "2026-01-01 00:00:00.000000"
    with engine.begin() as conn:
        org = repo.create_organization(conn, "Old")["id"]
        d = "directory_old"  # the tables as they were at 0008: no helper that reads today's columns
        conn.execute(
            sa.text(
                "INSERT INTO directories (id, organization_id, name, type, state, config, created_at,"
                " updated_at) VALUES (:d, :o, 'old', 'ldap', 'linking', '{}', :now, :now)"
            ),
            {"d": d, "o": org, "now": now},
        )
        common = {"d": d, "o": org, "now": now}
        conn.execute(
            sa.text(
                "INSERT INTO directory_users (id, directory_id, organization_id, idp_id, dn, state, present,"
                " raw_attributes, custom_attributes, content_hash, created_at, updated_at) VALUES"
                " ('directory_user_1', :d, :o, 'u1', 'UID=Ada , OU=People,DC=Example', 'active', 1, '{}',"
                " '{}', 'h', :now, :now)"
            ),
            common,
        )
        conn.execute(
            sa.text(
                "INSERT INTO directory_groups (id, directory_id, organization_id, idp_id, dn, name,"
                " raw_attributes, content_hash, created_at, updated_at) VALUES"
                " ('directory_group_1', :d, :o, 'g1', 'CN=Eng,DC=Example', 'Eng', '{}', 'h', :now, :now)"
            ),
            common,
        )
    migrate(engine)
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text("SELECT ref_key FROM directory_users UNION ALL SELECT ref_key FROM directory_groups")
        ).scalars()
        assert sorted(keys) == ["cn=eng,dc=example", "uid=ada,ou=people,dc=example"]
    engine.dispose()


class StaticConnector:
    """An in-memory connector (pure test double): returns a fixed snapshot, or fails."""

    def __init__(self, snapshot: Snapshot | None = None, error: ConnectorError | None = None) -> None:
        self._snapshot, self._error = snapshot, error

    def snapshot(self, progress: Progress | None = None, previous: object = None) -> Snapshot:
        if self._error is not None:
            raise self._error
        assert self._snapshot is not None
        return self._snapshot

    def test(self) -> object:  # pragma: no cover - not used here
        raise NotImplementedError


def people(n: int, title: str = "t") -> Snapshot:
    b = SnapshotBuilder()
    for i in range(n):
        attrs = {"mail": [f"p{i}@x.io".encode()], "title": [title.encode()], "uid": [f"p{i}".encode()]}
        user = map_user(f"ext-{i}", f"uid=p{i},dc=x", True, decode_attributes(attrs), AttributeMapping())
        assert isinstance(user, DirectoryUser)
        b.add_user(user)
    return b.build()


def directory(rt: Runtime) -> str:
    with rt.engine.begin() as conn:
        row = repo.create_directory(
            conn,
            new_org(rt),
            "d",
            "ldap",
            {"url": "ldap://x", "bind_dn": "cn=x", "search_paths": ["DC=x"]},
            None,
        )
    return str(row["id"])


def test_a_crash_while_applying_leaves_the_previous_state(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = directory(rt)
    assert run_sync(rt.engine, d, StaticConnector(people(5))).ok
    before = dump(rt)

    real = ingest_module.apply_changes

    def explode(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]  # every row written, then the crash
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest_module, "apply_changes", explode)
    result = run_sync(rt.engine, d, StaticConnector(people(8, title="new")))
    assert result.status == "failed" and "disk on fire" in (result.error or "")
    assert dump(rt) == before
    with rt.engine.connect() as conn:
        assert repo.get_run(conn, result.run_id)["status"] == "failed"


def test_a_connector_failure_is_recorded_with_its_reason(rt: Runtime) -> None:
    d = directory(rt)
    result = run_sync(rt.engine, d, StaticConnector(error=ConnectorError(FailureReason.TIMEOUT, "slow")))
    assert (result.status, result.error_reason, result.error) == ("failed", "timeout", "slow")
    with rt.engine.connect() as conn:
        (run,) = repo.list_runs(conn, d)
        assert repo.get_directory(conn, d)["state"] == "linking"
    assert run["status"] == "failed" and run["finished_at"] is not None


def test_large_change_sets_apply_in_bulk(rt: Runtime) -> None:
    d = directory(rt)
    assert run_sync(rt.engine, d, StaticConnector(people(3000))).ok
    second = run_sync(rt.engine, d, StaticConnector(people(3000, title="changed")))
    assert second.ok and second.counts["user_updated"] == 3000
    assert run_sync(rt.engine, d, StaticConnector(people(3000, title="changed"))).counts["user_updated"] == 0


def _snapshot(users: dict[str, tuple[bool, str]], groups: dict[str, frozenset[str]]) -> Snapshot:
    from roster.domain.mapping import map_group

    b = SnapshotBuilder()
    for ext, (active, title) in users.items():
        attrs = {"mail": [f"{ext}@x.io".encode()], "title": [title.encode()], "uid": [ext.encode()]}
        user = map_user(ext, f"uid={ext},dc=x", active, decode_attributes(attrs), AttributeMapping())
        assert isinstance(user, DirectoryUser)
        b.add_user(user)
    for ext, members in groups.items():
        dns = tuple(f"uid={m},dc=x" if m.startswith("p") else f"cn={m},dc=x" for m in sorted(members))
        b.add_group(map_group(ext, f"cn={ext},dc=x", {}, dns, AttributeMapping()))
    return b.build()


_names = st.sampled_from([f"p{i}" for i in range(8)])
_gnames = st.sampled_from([f"g{i}" for i in range(4)])
_history = st.lists(
    st.tuples(
        st.dictionaries(_names, st.tuples(st.booleans(), st.sampled_from(["a", "b"])), max_size=8),
        st.dictionaries(_gnames, st.frozensets(_names | _gnames, max_size=5), max_size=4),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=_history)
def test_sync_then_sync_again_writes_nothing_on_the_real_store(tmp_path: Path, history: list) -> None:  # type: ignore[type-arg]
    """Reconcile -> apply (the real store) -> reconcile again gives an empty change set."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        runtime = make_runtime(f"sqlite:///{folder}/r.db", Path(folder))
        try:
            d = directory(runtime)
            for users, groups in history:
                snap = _snapshot(users, groups)
                assert run_sync(runtime.engine, d, StaticConnector(snap), force=True).ok
                again = run_sync(runtime.engine, d, StaticConnector(snap), force=True)
                assert again.ok and again.changes is not None and again.changes.is_empty
        finally:
            runtime.engine.dispose()
