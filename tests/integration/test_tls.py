"""LDAPS and StartTLS against a slapd with a certificate from a test CA; verification stays on."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.connector import LdapConnector
from roster.demo.slapd import Slapd, SlapdError, Tls
from tests.conftest import BASE_LDIF
from tests.support.servers import unavailable


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder: Path) -> Tls:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Roster Test CA"))
        .issuer_name(_name("Roster Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = Tls(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tls


@pytest.fixture(scope="module")
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


def config(server: Slapd, url: str, **kw: object) -> LdapConfig:
    return LdapConfig(
        url=url,
        bind_dn=server.admin_dn,
        bind_password=server.admin_password,
        search_paths=("DC=example, DC=com",),
        connect_timeout=5,
        operation_timeout=10,
        **kw,
    )  # type: ignore[arg-type]


def test_ldaps_with_the_ca_file(tls_slapd: Slapd) -> None:
    assert tls_slapd.tls is not None
    snap = LdapConnector(
        config(tls_slapd, tls_slapd.ldaps_url, ca_file=str(tls_slapd.tls.ca_file))
    ).snapshot()
    assert [u.email for u in snap.users.values()] == ["ada@example.com"]


def test_start_tls_with_the_ca_file(tls_slapd: Slapd) -> None:
    assert tls_slapd.tls is not None
    cfg = config(tls_slapd, tls_slapd.url, ca_file=str(tls_slapd.tls.ca_file), start_tls=True)
    assert len(LdapConnector(cfg).snapshot().users) == 1


def test_unknown_ca_is_refused(tls_slapd: Slapd, tmp_path: Path) -> None:
    other = make_pki(tmp_path)  # a CA that did not sign the server's certificate
    report = LdapConnector(config(tls_slapd, tls_slapd.ldaps_url, ca_file=str(other.ca_file))).test()
    assert not report.ok and report.detail.startswith("TLS with ")
    start = LdapConnector(config(tls_slapd, tls_slapd.url, ca_file=str(other.ca_file), start_tls=True)).test()
    assert not start.ok and "TLS" in start.detail


def test_the_test_only_opt_out_skips_verification(tls_slapd: Slapd, tmp_path: Path) -> None:
    other = make_pki(tmp_path)
    cfg = config(tls_slapd, tls_slapd.ldaps_url, ca_file=str(other.ca_file), insecure_skip_tls_verify=True)
    assert LdapConnector(cfg).test().ok
