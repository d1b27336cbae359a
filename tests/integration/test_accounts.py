"""Accounts and groups follow the directory; sharing and login, over the real HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from roster.api.app import create_app
from roster.demo.samba import SambaDC
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from tests.support.ad_tree import PASSWORD, AdTree
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app


@dataclass
class Org:
    id: str
    http: httpx.Client

    def accounts(self) -> dict[str, dict[str, object]]:
        data = self.http.get(f"/api/v1/organizations/{self.id}/accounts").json()["data"]
        return {a["email"]: a for a in data}

    def groups(self) -> dict[str, list[dict[str, object]]]:
        out: dict[str, list[dict[str, object]]] = {}
        for g in self.http.get(f"/api/v1/organizations/{self.id}/groups").json()["data"]:
            out.setdefault(g["name"], []).append(g)
        return out

    def members(self, group_id: object, effective: bool = False) -> set[str]:
        data = self.http.get(f"/api/v1/groups/{group_id}/members", params={"effective": effective}).json()[
            "data"
        ]
        return {m["email"] for m in data}

    def access(self, account_id: object, resource: str) -> bool:
        r = self.http.get(
            f"/api/v1/organizations/{self.id}/access",
            params={"account_id": account_id, "resource_id": resource},
        )
        return bool(r.json()["allowed"])


@pytest.fixture
def org(rt: Runtime) -> Iterator[Org]:
    org_id = new_org(rt)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org_id, "app")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
    ):
        yield Org(org_id, http)


def test_accounts_link_provision_and_follow(rt: Runtime, org: Org, slapd: Slapd, tree: Tree) -> None:
    local = org.http.post(
        f"/api/v1/organizations/{org.id}/accounts",
        json={"email": "ADA@example.com", "name": "Ada local", "password": "local-password-1"},
    )
    assert local.status_code == 201 and not local.json()["directory_managed"]
    org.http.post(
        f"/api/v1/organizations/{org.id}/accounts", json={"email": "carol@example.com", "name": "Carol"}
    )
    ada = tree.add_user("ada", given="Ada", sn="Lovelace")
    bob = tree.add_user("bob")
    tree.add_user("nomail", mail=None)
    d = ldap_directory(rt, org.id, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    result = sync_directory(rt, d)
    assert result.ok and result.counts["account_linked"] == 1 and result.counts["account_provisioned"] == 1

    accounts = org.accounts()
    assert set(accounts) == {"ada@example.com", "bob@example.com", "carol@example.com"}  # nomail: skipped
    linked = accounts["ada@example.com"]
    assert (
        linked["id"] == local.json()["id"]
        and linked["directory_managed"]
        and linked["name"] == "Ada Lovelace"
    )
    assert linked["has_local_password"] is False  # the directory password rules now
    assert (
        accounts["bob@example.com"]["directory_managed"]
        and not accounts["carol@example.com"]["directory_managed"]
    )

    refused = org.http.patch(f"/api/v1/accounts/{linked['id']}", json={"name": "Someone else"})
    assert refused.status_code == 409
    body = refused.json()
    assert (
        body["field"] == "name" and d in body["directory"] and body["message"].startswith("name: managed by")
    )
    assert (
        org.http.patch(f"/api/v1/accounts/{linked['id']}", json={"password": "whatever-1"}).status_code == 409
    )
    ok = org.http.patch(f"/api/v1/accounts/{linked['id']}", json={"role": "admin", "data": {"seat": 7}})
    assert ok.status_code == 200 and ok.json()["role"] == "admin" and ok.json()["data"] == {"seat": 7}
    assert (
        org.http.patch(
            f"/api/v1/accounts/{accounts['carol@example.com']['id']}", json={"name": "Carol C"}
        ).json()["name"]
        == "Carol C"
    )

    tree.replace(ada, "shadowExpire", ["1"])  # disabled in the directory
    tree.delete(bob)  # deleted in the directory
    assert sync_directory(rt, d, force=True).ok  # every user going: the deletion guard asks for force
    accounts = org.accounts()
    assert accounts["ada@example.com"]["status"] == "disabled by directory"
    assert accounts["bob@example.com"]["status"] == "disabled by directory"  # kept, never deleted
    tree.replace(ada, "shadowExpire", ["99999"])
    assert sync_directory(rt, d).ok
    assert org.accounts()["ada@example.com"]["status"] == "active"


def test_groups_follow_with_nesting_sharing_and_policies(
    rt: Runtime, org: Org, slapd: Slapd, tree: Tree
) -> None:
    ada, bob, cy = tree.add_user("ada"), tree.add_user("bob"), tree.add_user("cy")
    eng = tree.add_group("eng", [ada])
    tree.add_group("all", [eng, bob])
    tree.add_group("ops", [cy])
    d = ldap_directory(rt, org.id, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    local = org.http.post(f"/api/v1/organizations/{org.id}/groups", json={"name": "eng"}).json()
    assert sync_directory(rt, d).ok
    groups = org.groups()
    assert sorted(g["source"] for g in groups["eng"]) == ["directory", "local"]  # same name, both kept
    eng_g = next(g for g in groups["eng"] if g["source"] == "directory")
    all_g = groups["all"][0]
    assert org.members(all_g["id"]) == {"bob@example.com"}
    assert org.members(all_g["id"], effective=True) == {"ada@example.com", "bob@example.com"}
    ids = {e: a["id"] for e, a in org.accounts().items()}
    mine = org.http.get(f"/api/v1/accounts/{ids['ada@example.com']}/groups").json()["data"]
    assert {g["name"] for g in mine} == {"eng", "all"}

    assert (
        org.http.post(
            f"/api/v1/groups/{eng_g['id']}/members", json={"member_id": ids["cy@example.com"]}
        ).status_code
        == 409
    )  # the directory decides
    assert (
        org.http.post(
            f"/api/v1/groups/{local['id']}/members", json={"member_id": ids["cy@example.com"]}
        ).status_code
        == 204
    )

    org.http.post(
        f"/api/v1/organizations/{org.id}/grants",
        json={"resource_id": "project-1", "principal_id": all_g["id"]},
    )
    org.http.put(
        f"/api/v1/organizations/{org.id}/resources/project-2",
        json={"owner_account_id": ids["bob@example.com"]},
    )
    assert org.access(ids["ada@example.com"], "project-1")  # through eng inside all
    assert not org.access(ids["cy@example.com"], "project-1")
    tree.replace(eng, "member", [cy])  # ada leaves eng, cy joins
    assert sync_directory(rt, d).ok
    assert not org.access(ids["ada@example.com"], "project-1")  # removed from the group: access gone
    assert org.access(ids["cy@example.com"], "project-1")
    tree.replace(bob, "shadowExpire", ["1"])
    assert sync_directory(rt, d).ok
    assert not org.access(ids["bob@example.com"], "project-2")  # disabled: no access...
    owned = org.http.get(f"/api/v1/accounts/{ids['bob@example.com']}").json()["owned_resources"]
    assert owned == ["project-2"]  # ...but what it owns stays recorded

    tree.delete(tree.group_dn("ops"))  # default policy: remove
    assert sync_directory(rt, d).ok
    assert "ops" not in org.groups()
    org.http.patch(f"/api/v1/organizations/{org.id}", json={"group_removal_policy": "keep_inactive"})
    tree.delete(tree.group_dn("all"))
    assert sync_directory(rt, d).ok
    kept = org.groups()["all"][0]
    assert kept["state"] == "inactive" and org.members(kept["id"]) == set()
    assert org.http.delete(f"/api/v1/groups/{kept['id']}").status_code == 204  # an admin removes it


def test_local_login_without_enumeration_and_with_throttling(rt: Runtime, org: Org) -> None:
    org.http.post(
        f"/api/v1/organizations/{org.id}/accounts",
        json={"email": "eve@example.com", "password": "right-password"},
    )

    def attempt(email: str, password: str, address: str = "198.51.100.7") -> httpx.Response:
        return org.http.post(
            "/api/v1/auth/login",
            json={"organization_id": org.id, "email": email, "password": password, "source_address": address},
        )

    good = attempt("EVE@example.com", "right-password")
    assert good.status_code == 200 and good.json()["account"]["email"] == "eve@example.com"
    wrong, unknown = attempt("eve@example.com", "nope"), attempt("nobody@example.com", "nope")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"code": "invalid_credentials", "message": "e-mail or password is wrong"}
    )
    for _ in range(4):
        attempt("eve@example.com", "nope", address="198.51.100.8")
    throttled = attempt("eve@example.com", "right-password", address="198.51.100.9")
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    for _ in range(5):
        attempt("ghost@example.com", "x", address="198.51.100.10")
    assert attempt("ghost@example.com", "x").status_code == 429  # unknown e-mails throttle the same way
    assert "right-password" not in repr(rt.engine.url)


def test_directory_login_reasons_from_active_directory(
    sqlite_rt: Runtime, samba_dc: SambaDC, ad_tree: AdTree
) -> None:
    rt = sqlite_rt
    org_id = new_org(rt)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org_id, "app")
    ad_tree.add_user("ok")
    lock = ad_tree.add_user("lock")
    ad_tree.add_user("off", disabled=True)
    change = ad_tree.add_user("change")
    d = ldap_directory(
        rt,
        org_id,
        samba_dc.ldaps_url,
        samba_dc.admin_dn,
        samba_dc.admin_password,
        [ad_tree.search_path],
        type="active_directory",
        ca_file=str(samba_dc.ca_file),
    )
    assert sync_directory(rt, d).ok
    ad_tree.replace(change, "pwdLastSet", [b"0"])  # after the sync: refused at once anyway
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
    ):

        def code(email: str, password: str) -> str:
            r = http.post(
                "/api/v1/auth/login",
                json={
                    "organization_id": org_id,
                    "email": email,
                    "password": password,
                    "source_address": f"203.0.113.{len(email)}",
                },
            )
            return "ok" if r.status_code == 200 else str(r.json()["code"])

        assert code("ok@example.com", PASSWORD) == "ok"
        assert code("ok@example.com", "wrong") == "invalid_credentials"
        assert code("off@example.com", PASSWORD) == "disabled"
        assert code("change@example.com", PASSWORD) == "password_expired"
        for _ in range(3):
            code("lock@example.com", "wrong")
        assert code("lock@example.com", PASSWORD) == "locked"  # at once, before the next sync
    del lock
