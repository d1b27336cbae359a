"""Write to the test slapd: one isolated OU per test, with people and groups inside."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import ldap
import ldap.modlist

from roster.demo.slapd import Slapd

_counter = itertools.count(1)


@dataclass
class Tree:
    """An OU of its own (``ou=tN,<suffix>``) holding ou=People and ou=Groups."""

    server: Slapd
    name: str = field(default_factory=lambda: f"t{next(_counter)}")
    conn: Any = None

    def __post_init__(self) -> None:
        self.conn = ldap.initialize(self.server.url)
        self.conn.simple_bind_s(self.server.admin_dn, self.server.admin_password)
        self.add(self.base, {"objectClass": ["organizationalUnit"], "ou": [self.name]})
        self.add(self.people, {"objectClass": ["organizationalUnit"], "ou": ["People"]})
        self.add(self.groups, {"objectClass": ["organizationalUnit"], "ou": ["Groups"]})

    @property
    def base(self) -> str:
        return f"ou={self.name},{self.server.suffix}"

    @property
    def people(self) -> str:
        return f"ou=People,{self.base}"

    @property
    def groups(self) -> str:
        return f"ou=Groups,{self.base}"

    @property
    def search_path(self) -> str:
        dcs = ", ".join(p.upper().replace("DC=", "DC=") for p in self.server.suffix.split(","))
        return f"OU={self.name}, {dcs}"

    def add(self, dn: str, attrs: dict[str, list[str]]) -> None:
        encoded = {k: [v.encode() for v in vs] for k, vs in attrs.items()}
        self.conn.add_s(dn, ldap.modlist.addModlist(encoded))

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{self.groups}"

    def add_user(
        self,
        uid: str,
        *,
        mail: str | None = "",
        given: str = "Test",
        sn: str | None = None,
        disabled: bool = False,
        **extra: str,
    ) -> str:
        sn = sn or uid.capitalize()
        attrs = {
            "objectClass": ["inetOrgPerson", "shadowAccount"],
            "uid": [uid],
            "cn": [f"{given} {sn}"],
            "sn": [sn],
            "givenName": [given],
            "displayName": [f"{given} {sn}"],
        }
        if mail == "":
            mail = f"{uid}@example.com"
        if mail is not None:
            attrs["mail"] = [mail]
        if disabled:
            attrs["shadowExpire"] = ["1"]
        for key, value in extra.items():
            attrs[key] = [value]
        self.add(self.user_dn(uid), attrs)
        return self.user_dn(uid)

    def add_group(self, cn: str, members: list[str], description: str | None = None) -> str:
        attrs = {"objectClass": ["groupOfNames"], "cn": [cn], "member": members or [self.group_dn(cn)]}
        if description:
            attrs["description"] = [description]
        self.add(self.group_dn(cn), attrs)
        return self.group_dn(cn)

    def replace(self, dn: str, attr: str, values: list[str]) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_REPLACE, attr, [v.encode() for v in values])])

    def add_values(self, dn: str, attr: str, values: list[str]) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_ADD, attr, [v.encode() for v in values])])

    def delete_values(self, dn: str, attr: str, values: list[str]) -> None:
        self.conn.modify_s(dn, [(ldap.MOD_DELETE, attr, [v.encode() for v in values])])

    def move(self, dn: str, new_parent: str) -> str:
        rdn = dn.split(",", 1)[0]
        self.conn.rename_s(dn, rdn, new_parent)
        return f"{rdn},{new_parent}"

    def delete(self, dn: str) -> None:
        self.conn.delete_s(dn)

    def close(self) -> None:
        self.conn.unbind_s()
