import pytest

from roster.connectors.ldap.bind import BindReason, bind_name, reason_from_message, verify_password
from roster.connectors.ldap.config import LdapConfig


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1",
            BindReason.INVALID_CREDENTIALS,
        ),
        (
            "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 775, v2580",
            BindReason.LOCKED,
        ),
        ("... AcceptSecurityContext error, data 533, v1db1", BindReason.DISABLED),
        ("... AcceptSecurityContext error, data 532, v1db1", BindReason.PASSWORD_EXPIRED),
        ("... AcceptSecurityContext error, data 773, v1db1", BindReason.MUST_CHANGE_PASSWORD),
        ("... AcceptSecurityContext error, data 701, v1db1", BindReason.ACCOUNT_EXPIRED),
        ("... AcceptSecurityContext error, data 525, v1db1", BindReason.INVALID_CREDENTIALS),
        ("Invalid credentials", BindReason.INVALID_CREDENTIALS),  # OpenLDAP says no more
    ],
)
def test_ad_data_codes(message: str, reason: BindReason) -> None:
    assert reason_from_message(message) is reason


def test_bind_names() -> None:
    assert bind_name("{login}@example.local", "ada") == "ada@example.local"
    assert bind_name("EXAMPLE\\{login}", "ada") == "EXAMPLE\\ada"
    assert bind_name("uid={login},ou=People,dc=x", "a,b=c") == "uid=a\\,b\\=c,ou=People,dc=x"
    with pytest.raises(ValueError, match="login: give the user name only"):
        bind_name("{login}@example.local", "ada@evil.example")
    with pytest.raises(ValueError, match="login: must be 1 to 256"):
        bind_name("{login}", "")
    with pytest.raises(ValueError, match="login: must be 1 to 256"):
        bind_name("{login}", "ada\x00")


def test_empty_passwords_and_plaintext_never_reach_the_server() -> None:
    # Port 9 on loopback has no server: reaching it would answer "unreachable", not these reasons.
    plain = LdapConfig(url="ldap://127.0.0.1:9", bind_dn="", bind_password="", search_paths=("DC=x",))
    assert verify_password(plain, "ada", "").reason is BindReason.INVALID_CREDENTIALS
    assert verify_password(plain, "ada", "secret").reason is BindReason.INSECURE
    tls = LdapConfig(
        url="ldaps://127.0.0.1:9", bind_dn="", bind_password="", search_paths=("DC=x",), connect_timeout=2
    )
    assert verify_password(tls, "ada", "secret").reason is BindReason.UNREACHABLE
