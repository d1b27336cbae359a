"""LDAPS and StartTLS against a slapd with a certificate from a test CA; verification stays on."""

from __future__ import annotations

from pathlib import Path

from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.connector import LdapConnector
from roster.demo.pki import make_pki
from roster.demo.slapd import Slapd


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
