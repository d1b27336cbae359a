"""Write to the test Samba AD DC over LDAPS: one isolated OU per test."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import ldap
import ldap.modlist

from roster.demo.samba import SambaDC

_counter = itertools.count(1)
PASSWORD = "Roster-User-1!"


def admin_connection(dc: SambaDC) -> Any:
    conn = ldap.initialize(dc.ldaps_url)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(dc.ca_file))
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    conn.simple_bind_s(dc.admin_dn, dc.admin_password)
    return conn


def encode_password(password: str) -> bytes:
    return f'"{password}"'.encode("utf-16-le")


@dataclass
class AdTree:
    dc: SambaDC
    name: str = field(default_factory=lambda: f"t{next(_counter)}")
    conn: Any = None

    def __post_init__(self) -> None:
        self.conn = admin_connection(self.dc)
        self.add(self.base, {"objectClass": [b"organizationalUnit"]})
        self.add(self.attic, {"objectClass": [b"organizationalUnit"]})

    @property
    def base(self) -> str:
        return f"OU={self.name},OU=Roster,{self.dc.base_dn}"

    @property
    def attic(self) -> str:
        return f"OU={self.name}-attic,OU=Roster,{self.dc.base_dn}"

    @property
    def search_path(self) -> str:
        return self.base.replace(",", ", ")

    def account(self, short: str) -> str:
        """sAMAccountName is unique in the domain: each test's accounts carry its OU's name."""
        return f"{short}.{self.name}"

    def add(self, dn: str, attrs: dict[str, list[bytes]]) -> None:
        self.conn.add_s(dn, ldap.modlist.addModlist(attrs))

    def add_user(
        self,
        sam: str,
        *,
        mail: str | None = "",
        password: str | None = PASSWORD,
        disabled: bool = False,
        parent: str | None = None,
        **extra: bytes,
    ) -> str:
        dn = f"CN={sam},{parent or self.base}"
        account = self.account(sam)
        attrs: dict[str, list[bytes]] = {
            "objectClass": [b"user"],
            "sAMAccountName": [account.encode()],
            "userPrincipalName": [f"{account}@{self.dc.realm.lower()}".encode()],
            "givenName": [sam.capitalize().encode()],
            "sn": [b"Tester"],
            "displayName": [f"{sam.capitalize()} Tester".encode()],
        }
        if mail == "":
            mail = f"{sam}@example.com"
        if mail is not None:
            attrs["mail"] = [mail.encode()]
        if password is not None:
            attrs["unicodePwd"] = [encode_password(password)]
            attrs["userAccountControl"] = [b"514" if disabled else b"512"]
        for key, value in extra.items():
            attrs[key] = [value]
        self.add(dn, attrs)
        return dn

    def add_group(self, name: str, members: list[str]) -> str:
        dn = f"CN={name},{self.base}"
        attrs: dict[str, list[bytes]] = {
            "objectClass": [b"group"],
            "sAMAccountName": [self.account(name).encode()],
        }
        if members:
            attrs["member"] = [m.encode() for m in members]
        self.add(dn, attrs)
        return dn

    def replace(self, dn: str, attr: str, values: list[bytes]) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_REPLACE, attr, values)])

    def add_values(self, dn: str, attr: str, values: list[bytes]) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_ADD, attr, values)])

    def delete_values(self, dn: str, attr: str, values: list[bytes]) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_DELETE, attr, values)])

    def rename(self, dn: str, new_rdn: str, new_parent: str | None = None) -> str:
        self.conn.rename_s(dn, new_rdn, new_parent)
        return f"{new_rdn},{new_parent or dn.split(',', 1)[1]}"

    def delete(self, dn: str) -> None:
        self.conn.delete_s(dn)

    def close(self) -> None:
        self.conn.unbind_s()
