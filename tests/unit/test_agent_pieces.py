"""The agent's request proof, its password sealing and the task leases, without a network."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from roster.agent import proof, tasks
from roster.agent.sealing import open_sealed, seal
from roster.agent.state import check_server
from roster.connectors.base import ConfigError
from roster.store.schema_access import agent_tasks
from tests.conftest import make_runtime
from tests.support.helpers import new_org


def _public(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_a_proof_holds_only_for_its_own_request() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    headers = proof.sign(key, "agent_1", "PUT", "/agent/v1/tasks/t/upload?offset=0", b"chunk")
    date, signature = headers[proof.DATE], headers[proof.SIGNATURE]
    assert (
        proof.verify(_public(key), "PUT", "/agent/v1/tasks/t/upload?offset=0", b"chunk", date, signature)
        is None
    )
    refusals = [
        proof.verify(_public(other), "PUT", "/agent/v1/tasks/t/upload?offset=0", b"chunk", date, signature),
        proof.verify(_public(key), "PUT", "/agent/v1/tasks/t/upload?offset=9", b"chunk", date, signature),
        proof.verify(_public(key), "PUT", "/agent/v1/tasks/t/upload?offset=0", b"other", date, signature),
        proof.verify(_public(key), "POST", "/agent/v1/tasks/t/upload?offset=0", b"chunk", date, signature),
        proof.verify(
            _public(key), "PUT", "/agent/v1/tasks/t/upload?offset=0", b"chunk", str(int(date) + 1), signature
        ),
        proof.verify(_public(key), "PUT", "/agent/v1/tasks/t/upload?offset=0", b"chunk", "soon", signature),
    ]
    assert all(refusals), refusals
    stale = str(int(time.time()) - proof.SKEW - 5)
    assert "clock" in (proof.verify(_public(key), "GET", "/", b"", stale, signature) or "")


def test_a_sealed_password_opens_only_with_its_agents_key() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    sealed = seal(_public(key), "Correct-Horse-1")
    assert "Correct-Horse-1" not in sealed
    assert open_sealed(key, sealed) == "Correct-Horse-1"
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM refuses the wrong key (InvalidTag)
        open_sealed(other, sealed)
    assert seal(_public(key), "x") != seal(_public(key), "x")  # a fresh key agreement each time


def test_the_agent_talks_to_https_or_loopback_only() -> None:
    assert check_server("https://roster.example.com/") == "https://roster.example.com"
    assert check_server("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match="server"):
        check_server("http://roster.example.com")


def test_leases_repeat_syncs_on_another_agent_but_never_logins(tmp_path: Path) -> None:
    rt = make_runtime(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    org = new_org(rt)
    from roster.directories import DirectorySpec, create_directory

    d = create_directory(
        rt, DirectorySpec(org, "A", "ldap", {"connection": "agent", "search_paths": ["DC=example, DC=com"]})
    )["id"]
    one, two = {"id": "agent_one", "directory_id": d}, {"id": "agent_two", "directory_id": d}
    with rt.engine.begin() as conn:
        sync = tasks.enqueue(conn, d, "full", {})
        login = tasks.enqueue(conn, d, "login", {"sealed": "x"}, agent_id="agent_one")
        assert tasks.claim(conn, two, timedelta(seconds=30))["id"] == sync  # type: ignore[index]
        assert tasks.claim(conn, two, timedelta(seconds=30)) is None  # the login is agent one's
        assert tasks.claim(conn, one, timedelta(seconds=-1))["id"] == login  # type: ignore[index]
    with rt.engine.begin() as conn:  # agent two goes silent: its lease runs out
        past = datetime(2000, 1, 1, tzinfo=UTC)
        conn.execute(sa.update(agent_tasks).where(agent_tasks.c.id == sync).values(lease_until=past))
        taken = tasks.claim(conn, one, timedelta(seconds=30))
        assert taken is not None and taken["id"] == sync  # agent two went silent: its sync is repeated
        assert tasks.claim(conn, two, timedelta(seconds=30)) is None  # an expired login is never re-given
        assert tasks.append(conn, sync, "agent_one", 0, b"abc") == 3
        assert tasks.append(conn, sync, "agent_one", 0, b"abc") == 3  # a repeated chunk: where to resume
        assert tasks.append(conn, sync, "agent_one", 3, b"de") == 5
        with pytest.raises(tasks.TaskGone):
            tasks.append(conn, sync, "agent_two", 5, b"f")
        tasks.abandon(conn, login, "given up")
        assert (
            conn.execute(sa.select(agent_tasks.c.payload).where(agent_tasks.c.id == login)).scalar() == "{}"
        )
    rt.engine.dispose()


def test_an_expired_or_foreign_code_is_refused(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from roster.agent import registry
    from roster.directories import DirectorySpec, create_directory

    rt = make_runtime(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    org = new_org(rt)
    paths = {"search_paths": ["DC=example, DC=com"]}
    agent_dir = create_directory(rt, DirectorySpec(org, "A", "ldap", {"connection": "agent", **paths}))["id"]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    with rt.engine.begin() as conn:
        expired, _ = registry.issue_code(conn, agent_dir, timedelta(seconds=-1))
        fresh, _ = registry.issue_code(conn, agent_dir, timedelta(minutes=5))
    for code, version, why in [
        (expired, "0.1.0", "unknown, used or expired"),
        ("NOT-A-CODE", "0.1.0", "unknown, used or expired"),
        (fresh, "0.0.1", "needs roster 0.1.0"),
    ]:
        with rt.engine.begin() as conn, pytest.raises(registry.AgentRefused, match=why):
            registry.enroll(conn, rt.box, code, pem, "host", version)
    with rt.engine.begin() as conn:
        done = registry.enroll(conn, rt.box, fresh, pem, "host", "0.1.0")
    cert = x509.load_pem_x509_certificate(done.certificate_pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == agent_dir
    ca = x509.load_pem_x509_certificate(done.ca_pem.encode())
    cert.verify_directly_issued_by(ca)
    direct = {"url": "ldap://127.0.0.1", "bind_dn": "cn=x", **paths}
    ldap_dir = create_directory(rt, DirectorySpec(org, "B", "ldap", direct, "pw"))["id"]
    with (
        rt.engine.begin() as conn,
        pytest.raises(registry.AgentRefused, match="not connected through an agent"),
    ):
        registry.issue_code(conn, ldap_dir, timedelta(minutes=5))
    rt.engine.dispose()


def test_a_damaged_or_cut_upload_is_refused(tmp_path: Path) -> None:
    import gzip

    from roster.agent.connector import AgentConnector
    from roster.connectors.base import ConnectorError
    from roster.directories import DirectorySpec, create_directory
    from roster.domain.records import Snapshot
    from roster.wire import encode_batch

    rt = make_runtime(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    org = new_org(rt)
    row = create_directory(
        rt, DirectorySpec(org, "A", "ldap", {"connection": "agent", "search_paths": ["DC=example, DC=com"]})
    )
    agent = {"id": "agent_one", "directory_id": row["id"]}
    connector = AgentConnector(rt.engine, row, timedelta(seconds=5))
    whole = gzip.compress(encode_batch(Snapshot(users={}, groups={}, memberships=frozenset())))
    for upload, why in [(b"not gzip at all", "damaged"), (whole[:-9], "cut short"), (whole, None)]:
        with rt.engine.begin() as conn:
            task = tasks.enqueue(conn, row["id"], "full", {})
            tasks.claim(conn, agent)
            tasks.append(conn, task, "agent_one", 0, upload)
        if why is None:
            assert isinstance(connector._batch(task), Snapshot)
        else:
            with pytest.raises(ConnectorError, match=why):
                connector._batch(task)
    rt.engine.dispose()
