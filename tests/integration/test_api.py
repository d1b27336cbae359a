"""The HTTP API over a real uvicorn server on loopback, read by the official WorkOS SDK."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from workos import WorkOSClient
from workos._errors import AuthenticationError, NotFoundError

from roster.api.app import create_app
from roster.demo.slapd import Slapd, free_port
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import jobs, repo
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app


@dataclass
class Api:
    url: str
    admin_key: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def api(rt: Runtime) -> Iterator[Api]:
    with rt.engine.begin() as conn:
        _, admin = repo.create_api_key(conn, None, "admin")
    with serve_app(create_app(rt)) as url:
        yield Api(url, admin)


def org_key(rt: Runtime, org_id: str) -> str:
    with rt.engine.begin() as conn:
        return repo.create_api_key(conn, org_id, "org")[1]


def synced(rt: Runtime, slapd: Slapd, tree: Tree, users: int) -> tuple[str, str]:
    dns = [tree.add_user(f"user{i:03d}", given=f"G{i}") for i in range(users)]
    tree.add_group("everyone", dns)
    tree.add_group("first", dns[:3])
    org = new_org(rt)
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    return org, d


def test_workos_sdk_reads_everything(rt: Runtime, api: Api, slapd: Slapd, tree: Tree) -> None:
    org, d = synced(rt, slapd, tree, 260)
    with WorkOSClient(api_key=org_key(rt, org), client_id="client_test", base_url=api.url) as sdk:
        check_sdk(sdk, api, org, d)


def check_sdk(sdk: WorkOSClient, api: Api, org: str, d: str) -> None:

    emails = [u.email for u in sdk.directory_sync.list_users(directory=d, limit=100).auto_paging_iter()]
    assert len(emails) == 260 and len(set(emails)) == 260  # auto-paging, no repeats
    desc = sdk.directory_sync.list_users(directory=d, limit=5)
    asc = sdk.directory_sync.list_users(directory=d, limit=5, order="asc")
    assert [u.id for u in desc.data] == sorted((u.id for u in desc.data), reverse=True)
    assert [u.id for u in asc.data] == sorted(u.id for u in asc.data)
    assert desc.list_metadata.before is None and desc.list_metadata.after == desc.data[-1].id

    directory = sdk.directory_sync.get_directory(d)
    assert directory.state == "linked" and directory.organization_id == org
    assert directory.metadata is not None and directory.metadata.users.active == 260
    assert [x.id for x in sdk.directory_sync.list_directories(organization_id=org).data] == [d]

    groups = {g.name: g for g in sdk.directory_sync.list_groups(directory=d).data}
    assert set(groups) == {"everyone", "first"}
    first = [u.username for u in sdk.directory_sync.list_users(group=groups["first"].id).auto_paging_iter()]
    assert sorted(first) == ["user000", "user001", "user002"]
    one = sdk.directory_sync.list_users(directory=d, email="USER001@example.com").data
    assert [u.username for u in one] == ["user001"]
    user = sdk.directory_sync.get_user(one[0].id)
    assert user.first_name == "G1" and {g.name for g in user.groups or []} == {"everyone", "first"}
    assert {g.name for g in sdk.directory_sync.list_groups(user=user.id).data} == {"everyone", "first"}
    assert sdk.directory_sync.get_group(groups["first"].id).name == "first"

    created = list(sdk.events.list_events(events=["dsync.user.created"], limit=100).auto_paging_iter())
    assert len(created) == 260 and [e.id for e in created] == sorted(e.id for e in created)
    assert created[0].data.email == "user000@example.com"
    activated = sdk.events.list_events(events=["dsync.activated"], organization_id=org).data
    assert len(activated) == 1 and activated[0].data.id == d

    newest = sdk.events.list_events(events=["dsync.user.created"], limit=2, order="desc").data
    assert [e.id for e in newest] == [created[-1].id, created[-2].id]
    assert sdk.directory_sync.list_directories(domain="EXAMPLE.com").data[0].id == d
    assert sdk.directory_sync.list_directories(domain="other.example").data == []
    with pytest.raises(NotFoundError):
        sdk.directory_sync.get_user("directory_user_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with (
        WorkOSClient(api_key="sk_roster_wrong", client_id="x", base_url=api.url, max_retries=0) as bad,
        pytest.raises(AuthenticationError),
    ):
        bad.directory_sync.list_directories()


def test_cursor_pagination_both_ways(rt: Runtime, api: Api, slapd: Slapd, tree: Tree) -> None:
    org, d = synced(rt, slapd, tree, 7)
    with api.client(org_key(rt, org)) as http:
        queued = http.post(f"/directories/{d}/sync")
        assert (queued.status_code, queued.json()) == (202, {"status": "queued"})
        everything = [
            u["id"]
            for u in http.get("/directory_users", params={"directory": d, "limit": 100}).json()["data"]
        ]
        p1 = http.get("/directory_users", params={"directory": d, "limit": 3}).json()
        p2 = http.get(
            "/directory_users", params={"directory": d, "limit": 3, "after": p1["list_metadata"]["after"]}
        ).json()
        back = http.get(
            "/directory_users", params={"directory": d, "limit": 3, "before": p2["list_metadata"]["before"]}
        ).json()
        normal = http.get("/directory_users", params={"directory": d, "limit": 3, "order": "normal"}).json()
        older = http.get(
            "/directory_users",
            params={
                "directory": d,
                "limit": 3,
                "order": "normal",
                "before": normal["list_metadata"]["before"],
            },
        ).json()
    ids = lambda page: [u["id"] for u in page["data"]]  # noqa: E731
    assert ids(p1) + ids(p2) == everything[:6]
    assert ids(back) == ids(p1)
    assert back["list_metadata"]["before"] is None
    assert ids(normal) == everything[:3] and ids(older) == everything[3:6]


def test_organization_scoping_and_auth(rt: Runtime, api: Api, slapd: Slapd, tree: Tree) -> None:
    org, d = synced(rt, slapd, tree, 2)
    other = new_org(rt, "Other")
    with api.client(org_key(rt, other)) as http:
        assert http.get(f"/directories/{d}").status_code == 404
        assert http.get("/directory_users", params={"directory": d}).status_code == 404
        assert http.get("/directories").json()["data"] == []
        assert http.get("/directory_users").json()["data"] == []
        assert http.get("/events", params={"events": "dsync.user.created"}).json()["data"] == []
        assert http.get("/directories", params={"organization_id": org}).status_code == 404
        assert http.post(f"/directories/{d}/sync").status_code == 404
        assert http.delete(f"/directories/{d}").status_code == 404
        assert http.post("/api/v1/organizations", json={"name": "x"}).status_code == 403
    with httpx.Client(base_url=api.url) as anon:
        response = anon.get("/directories")
        assert response.status_code == 401 and "missing API key" in response.json()["message"]
    with api.client(api.admin_key) as admin:
        assert len(admin.get("/directory_users").json()["data"]) == 2


def test_bad_requests_are_clear_and_change_nothing(rt: Runtime, api: Api, slapd: Slapd) -> None:
    org = new_org(rt)
    body = {
        "organization_id": org,
        "name": "AD",
        "type": "ldap",
        "url": slapd.url,
        "bind_dn": slapd.admin_dn,
        "bind_password": "x",
        "search_paths": ["DC=example, OU=People"],
    }
    with api.client(api.admin_key) as http:
        r = http.post("/api/v1/directories", json=body)
        assert r.status_code == 422
        assert r.json()["message"].startswith("search_path: search path 'DC=example, OU=People': element 2")
        r = http.post("/api/v1/directories", json={**body, "search_paths": ["DC=example"], "url": "http://x"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url"
        r = http.post("/api/v1/directories", json={**body, "type": "novell"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "type"
        r = http.post("/api/v1/directories", json={**body, "bogus": 1, "search_paths": ["DC=example"]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "bogus"
        r = http.post(
            "/api/v1/directories",
            content=b"{" + b" " * 2_000_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        r = http.get("/directory_users", params={"limit": 101})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"
        r = http.get("/events")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "events"
        r = http.get(
            "/events", params={"events": "dsync.user.created", "range_start": "2024-01-01T00:00:00+01:00"}
        )
        assert r.status_code == 422 and "range_start" in r.json()["message"]
        assert http.get("/api/v1/directories").json()["data"] == []


def test_admin_api_directory_lifecycle(rt: Runtime, api: Api, slapd: Slapd, tree: Tree) -> None:
    tree.add_user("ada")
    with api.client(api.admin_key) as http:
        org = http.post("/api/v1/organizations", json={"name": "Acme", "domain": "acme.test"}).json()
        key = http.post("/api/v1/api_keys", json={"organization_id": org["id"]}).json()["secret"]
    body = {
        "organization_id": org["id"],
        "name": "LDAP",
        "type": "ldap",
        "url": slapd.url,
        "bind_dn": slapd.admin_dn,
        "bind_password": slapd.admin_password,
        "search_paths": [tree.search_path],
    }
    rt.settings = rt.settings.model_copy(update={"directory_allowed_networks": "127.0.0.0/8"})
    with api.client(key) as http:
        created = http.post("/api/v1/directories", json=body)
        assert created.status_code == 201, created.text
        d = created.json()
        assert d["state"] == "linking" and "bind_password" not in d and d["has_bind_password"]
        test = http.post(f"/api/v1/directories/{d['id']}/test").json()
        assert test["ok"] and test["paths"][0]["ok"]
        dry = http.post(
            f"/api/v1/directories/{d['id']}/sync_runs", json={"dry_run": True, "wait": True}
        ).json()
        assert dry["kind"] == "dry_run" and dry["counts"]["user_created"] == 1
        assert [a["email"] for a in dry["new_accounts_since_last_sync"]] == ["ada@example.com"]
        assert dry["deleted_from_directory"] == []
        run = http.post(f"/api/v1/directories/{d['id']}/sync_runs", json={"wait": True}).json()
        assert run["status"] == "succeeded", run
        shown = http.get(f"/api/v1/sync_runs/{run['id']}").json()
        assert [e["change"] for e in shown["log"]] == ["user_created", "account_provisioned"]
        assert len(http.get(f"/api/v1/directories/{d['id']}/sync_runs").json()["data"]) == 2
        wrong = {"bind_password": "wrong", "name": "Renamed"}
        refused = http.patch(f"/api/v1/directories/{d['id']}", json=wrong)  # tested first: refused
        assert refused.status_code == 422 and refused.json()["message"].startswith("bind_password: ")
        assert http.get(f"/api/v1/directories/{d['id']}").json()["name"] == d["name"]  # nothing changed
        patched = http.patch(f"/api/v1/directories/{d['id']}", json={**wrong, "test": False})
        assert patched.status_code == 200 and patched.json()["name"] == "Renamed"
        failed = http.post(f"/api/v1/directories/{d['id']}/sync_runs", json={"wait": True}).json()
        assert failed["status"] == "failed" and failed["error_reason"] == "invalid_credentials"
        moved = http.patch(f"/api/v1/directories/{d['id']}", json={"url": "ldap://127.0.0.2:389"})
        assert moved.status_code == 422 and moved.json()["message"].startswith("bind_password: required")
        tls_off = http.patch(
            f"/api/v1/directories/{d['id']}", json={"insecure_skip_tls_verify": True, "bind_password": "x"}
        )
        assert tls_off.status_code == 403 and "admin API key" in tls_off.json()["message"]
        bad = http.patch(f"/api/v1/directories/{d['id']}", json={"search_paths": ["OU=x"]})
        assert bad.status_code == 422 and "search_path" in bad.json()["message"]
        assert http.delete(f"/api/v1/directories/{d['id']}").status_code == 204
        assert http.get(f"/api/v1/directories/{d['id']}").status_code == 404
        deleted = http.get("/events", params={"events": "dsync.deleted"}).json()["data"]
        assert [e["data"]["id"] for e in deleted] == [d["id"]]


def test_an_organization_key_reaches_only_the_networks_an_operator_allows(
    rt: Runtime, api: Api, slapd: Slapd, tree: Tree
) -> None:
    """Loopback is refused by default for an organization (not for an operator), every failure
    below LDAP gets the same words, and a refused URL stores nothing."""
    org = new_org(rt)
    body = {
        "organization_id": org,
        "name": "LDAP",
        "type": "ldap",
        "url": slapd.url,
        "bind_dn": slapd.admin_dn,
        "bind_password": slapd.admin_password,
        "search_paths": [tree.search_path],
    }
    closed = f"ldap://127.0.0.1:{free_port()}"
    with api.client(org_key(rt, org)) as http:
        answers = [
            http.post("/api/v1/directories", json={**body, "url": url})
            for url in (slapd.url, closed, "ldap://169.254.169.254", "ldap://no-such-host.invalid")
        ]
        assert {a.status_code for a in answers} == {422}
        words = {a.json()["message"].split(" at ", 1)[1].split(" (", 1)[1] for a in answers}
        assert len(words) == 1 and all("no LDAP server answered" in a.json()["message"] for a in answers)
        assert http.get("/api/v1/directories").json()["data"] == []
    with api.client(api.admin_key) as http:
        made = http.post("/api/v1/directories", json=body)
        assert (
            made.status_code == 201
            and http.post(f"/api/v1/directories/{made.json()['id']}/test").json()["ok"]
        )
        refused = http.post("/api/v1/directories", json={**body, "url": closed})  # tested first
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "url"
        assert (
            "unreachable" in refused.json()["message"] and "nothing was stored" in refused.json()["message"]
        )
        shut = http.post("/api/v1/directories", json={**body, "url": closed, "test": False}).json()
        operator_sees = http.post(f"/api/v1/directories/{shut['id']}/test").json()
        assert not operator_sees["ok"] and "unreachable" in operator_sees["detail"]
    rt.settings = rt.settings.model_copy(update={"directory_allowed_networks": "127.0.0.0/8"})
    with api.client(org_key(rt, org)) as http:
        mine = http.post("/api/v1/directories", json={**body, "url": closed, "test": False}).json()
        tenant_sees = http.post(f"/api/v1/directories/{mine['id']}/test").json()
        assert not tenant_sees["ok"] and "no LDAP server answered" in tenant_sees["detail"]
        assert "unreachable" not in tenant_sees["detail"]
    rt.settings = rt.settings.model_copy(update={"directory_allowed_networks": "10.0.0.0/8"})
    with api.client(org_key(rt, org)) as http:  # the mark stays: a sync re-checks the address
        run = http.post(f"/api/v1/directories/{mine['id']}/sync_runs", json={"wait": True}).json()
        assert run["status"] == "failed" and "no LDAP server answered" in run["error"]


def test_a_stuck_run_is_cancelled_and_waiting_answers_instead_of_hanging(
    rt: Runtime, api: Api, slapd: Slapd, tree: Tree
) -> None:
    """A process holding a directory stopped answering: waiting for a sync answers 202 with the
    queued job after ROSTER_SYNC_WAIT_SECONDS (not a 500 after ten minutes), and cancelling the
    stuck run frees the directory at once, for its own organization only."""
    org = new_org(rt)
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    with rt.engine.begin() as conn:
        jobs.hold_directory(conn, d, "cli:dead", timedelta(hours=6))
        stuck = repo.start_run(conn, repo.get_directory(conn, d), "cli", "full")["id"]
    rt.settings = rt.settings.model_copy(update={"sync_wait_seconds": 0.5})
    with api.client(org_key(rt, org)) as http:
        waited = http.post(f"/api/v1/directories/{d}/sync_runs", json={"wait": True})
        assert waited.status_code == 202 and waited.json()["status"] == "queued", waited.text
        assert "ROSTER_SYNC_WAIT_SECONDS" in waited.json()["message"]
    with api.client(org_key(rt, new_org(rt, "Other"))) as http:
        assert http.post(f"/api/v1/sync_runs/{stuck}/cancel").status_code == 404
    with api.client(org_key(rt, org)) as http:
        cancelled = http.post(f"/api/v1/sync_runs/{stuck}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["error_reason"] == "cancelled"
        assert http.post(f"/api/v1/sync_runs/{stuck}/cancel").status_code == 409
        rt.settings = rt.settings.model_copy(update={"sync_wait_seconds": 60})
        run = http.post(f"/api/v1/directories/{d}/sync_runs", json={"wait": True}).json()
        assert run["status"] == "succeeded", run  # the queued job ran once the directory was free


def test_an_azure_directory_through_the_admin_api(rt: Runtime, api: Api, tmp_path: Path) -> None:
    from roster.demo.graph import GraphEmulator
    from roster.demo.graph_tenant import Tenant
    from tests.support.graph import SECRET, company, register_app

    with GraphEmulator(tmp_path / "graph", Tenant()).running() as graph:
        company(graph.tenant)
        app = register_app(graph)
        org = new_org(rt)
        body = {
            "organization_id": org,
            "name": "Entra",
            "type": "azure",
            "tenant_id": graph.tenant.tenant_id,
            "client_id": app.client_id,
            "client_secret": SECRET,
            "login_url": graph.base,
            "graph_url": graph.graph_url,
            "ca_file": str(graph.ca_file),
        }
        with api.client(api.admin_key) as http:
            r = http.post("/api/v1/directories", json={**body, "cloud": "mars"})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cloud"
            r = http.post("/api/v1/directories", json={**body, "graph_url": "http://graph.example"})
            assert r.status_code == 422 and r.json()["message"].startswith(
                "graph_url: must be an https:// URL"
            )
            r = http.post("/api/v1/directories", json={k: v for k, v in body.items() if k != "client_secret"})
            assert r.status_code == 422 and r.json()["message"].startswith("client_secret: is required")
            assert http.get("/api/v1/directories").json()["data"] == []
            r = http.post("/api/v1/directories", json=body)
            assert r.status_code == 201, r.text
            created = r.json()
            assert SECRET not in r.text and created["config"]["tenant_id"] == graph.tenant.tenant_id
            synced = http.post(
                f"/api/v1/directories/{created['id']}/sync_runs", json={"wait": True, "force": True}
            )
            assert synced.status_code == 202 and synced.json()["status"] == "succeeded", synced.text
            users = http.get("/directory_users", params={"directory": created["id"], "limit": 100}).json()[
                "data"
            ]
            assert sorted(u["emails"][0]["value"] for u in users)[:2] == [
                "ada@example.com",
                "alan@example.com",
            ]
            d = created["id"]
            r = http.patch(
                f"/api/v1/directories/{d}", json={"name": "Entra (EU)", "upn_as_email": True}
            )  # (not near_real_time_seconds: the server would start a run the test does not wait for)
            assert r.status_code == 200 and r.json()["config"]["upn_as_email"] is True, r.text
            r = http.patch(
                f"/api/v1/directories/{d}", json={"client_id": "00000000-0000-4000-8000-00000000abcd"}
            )
            assert r.status_code == 422 and r.json()["message"].startswith("client_secret: required when")
            app.secret = "rotated-secret"
            r = http.patch(f"/api/v1/directories/{d}", json={"client_secret": "rotated-secret"})
            assert r.status_code == 200
            again = http.post(f"/api/v1/directories/{d}/sync_runs", json={"wait": True, "force": True})
            assert again.json()["status"] == "succeeded", again.text
        plain = {k: v for k, v in body.items() if k not in ("ca_file", "login_url", "graph_url")}
        with api.client(org_key(rt, org)) as http:
            r = http.post("/api/v1/directories", json={**body, "ca_file": None})
            assert r.status_code == 403 and "login_url: only an admin API key" in r.json()["message"]
            r = http.post("/api/v1/directories", json=plain)
            assert r.status_code == 201  # a tenant's own key picks a cloud, not hosts


def test_a_login_through_a_plain_ldap_directory_says_it_needs_tls(
    rt: Runtime, api: Api, slapd: Slapd, tree: Tree
) -> None:
    """The password is never sent without TLS, and the answer says so (not "cannot be reached")."""
    tree.add_user("ada", userPassword="ada-password")
    org = new_org(rt)
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    with api.client(org_key(rt, org)) as http:
        answer = http.post(
            "/api/v1/auth/login",
            json={"organization_id": org, "email": "ada@example.com", "password": "ada-password"},
        )
        assert answer.status_code == 503 and answer.json()["code"] == "directory_insecure"
        assert "LDAPS or StartTLS" in answer.json()["message"]
        shown = http.get(f"/api/v1/directories/{d}").json()
        assert shown["warnings"] and "cannot sign in" in shown["warnings"][0]


def test_a_tenant_changing_the_url_is_refused_before_any_connection_test(
    rt: Runtime, api: Api, slapd: Slapd, tree: Tree
) -> None:
    """An organization key moving its directory to a server it may not reach (here the loopback
    slapd under another name) gets the network refusal, never what that server answered (a wrong
    password's "invalid credentials" would make the test an oracle for internal directories)."""
    org = new_org(rt)
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    moved = slapd.url.replace("127.0.0.1", "localhost")
    with api.client(org_key(rt, org)) as http:
        for password in ("wrong", slapd.admin_password):
            r = http.patch(f"/api/v1/directories/{d}", json={"url": moved, "bind_password": password})
            assert r.status_code == 422 and r.json()["message"].startswith("url: "), r.text
            assert "credentials" not in r.json()["message"]
        assert http.get(f"/api/v1/directories/{d}").json()["config"]["url"] == slapd.url
