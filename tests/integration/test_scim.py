"""Inbound SCIM 2.0 against a live Roster server on loopback (SQLite and PostgreSQL): the python-scim
project's scim2-tester, the request sequences Microsoft and Okta publish for their provisioning
clients, concurrency, large groups, tokens, errors and the request log. What arrives is read back
through the official WorkOS SDK, as a host application would."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import sqlalchemy as sa
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server
from workos import WorkOSClient

from roster.directories import rotate_scim_token
from roster.domain.delta import Delta
from roster.scim.resources import user_record
from roster.store.schema import directory_users
from roster.store.schema_access import scim_requests, scim_tokens
from roster.sync.ingest import Policy, ingest
from tests.integration.test_api import org_key
from tests.support.helpers import event_list
from tests.support.scim import ScimSite, replay, scim_site, value_at

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Any:
    with scim_site(database_url, tmp_path) as s:
        yield s


def _user(client: httpx.Client, name: str, **extra: Any) -> str:
    body = {"userName": name, "emails": [{"value": name, "primary": True}], "active": True, **extra}
    response = client.post("/Users", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def test_scim2_tester_passes_every_check(site: ScimSite) -> None:
    headers = {"Authorization": f"Bearer {site.token}"}
    with httpx2.Client(base_url=site.base, headers=headers, timeout=60) as http:
        client = SyncSCIMClient(http)
        client.discover()
        results = check_server(client)
    counts = Counter(r.status for r in results)
    failed = [(r.title, r.reason) for r in results if r.status != Status.SUCCESS]
    assert not failed, failed
    assert counts[Status.SUCCESS] >= 130  # the README quotes the count of this scim2-tester version


@pytest.mark.parametrize(
    "fixture",
    ["entra-default.json", "entra-aadOptscim062020.json", "okta-user-lifecycle.json", "okta-group-push.json"],
)
def test_provider_request_sequences(site: ScimSite, fixture: str) -> None:
    with site.client() as client:
        recorded, ids = replay(client, fixture)
        final = recorded["final"]
        for key, expected in final["users"].items():
            got = client.get(f"/Users/{ids[key]}").json()
            for path, want in expected.items():
                want = ids.get(want, want) if isinstance(want, str) else want
                assert value_at(got, path) == want, f"{key}.{path}: {value_at(got, path)!r}"
        for key, expected in final["groups"].items():
            got = client.get(f"/Groups/{ids[key]}").json()
            assert got["displayName"] == expected["displayName"]
            assert sorted(m["value"] for m in got.get("members", [])) == sorted(
                ids[m] for m in expected["members"]
            )
        for key in final["deleted_users"]:
            assert client.get(f"/Users/{ids[key]}").status_code == 404
        for key in final["deleted_groups"]:
            assert client.get(f"/Groups/{ids[key]}").status_code == 404
    _read_through_workos(site, ids, final)


def _read_through_workos(site: ScimSite, ids: dict[str, str], final: dict[str, Any]) -> None:
    with WorkOSClient(api_key=org_key(site.rt, site.org), client_id="client_host", base_url=site.url) as sdk:
        _check_workos(sdk, site, ids, final)


def _check_workos(sdk: WorkOSClient, site: ScimSite, ids: dict[str, str], final: dict[str, Any]) -> None:
    users = {u.idp_id: u for u in sdk.directory_sync.list_users(directory=site.directory, limit=100).data}
    for key, expected in final["users"].items():
        user = users[ids[key]]
        assert user.state == ("active" if expected.get("active", True) else "inactive")
        if "userName" in expected:
            assert user.username == expected["userName"]
    for key in final["deleted_users"]:
        assert users[ids[key]].state == "inactive"  # kept, deactivated: never deleted
    groups = {g.idp_id: g for g in sdk.directory_sync.list_groups(directory=site.directory).data}
    for key, expected in final["groups"].items():
        group = groups[ids[key]]
        assert group.name == expected["displayName"]
        listed = {u.idp_id for u in sdk.directory_sync.list_users(group=group.id, limit=100).data}
        assert listed == {ids[m] for m in expected["members"]}
    directory = sdk.directory_sync.get_directory(site.directory)
    assert directory.type == "generic scim v2.0"
    assert directory.state == "linked"


def test_events_follow_the_requests(site: ScimSite) -> None:
    with site.client() as client:
        alice = _user(client, "alice@example.com")
        group = client.post("/Groups", json={"displayName": "Sales", "members": [{"value": alice}]}).json()
        client.patch(
            f"/Groups/{group['id']}", json=_patch({"op": "remove", "path": f'members[value eq "{alice}"]'})
        )
        client.patch(f"/Users/{alice}", json=_patch({"op": "replace", "value": {"active": False}}))
        assert client.delete(f"/Users/{alice}").status_code == 204
    kinds = [
        e["event"]
        for e in event_list(site.rt)
        if e["event"].startswith("dsync.") and "activated" not in e["event"]
    ]
    assert kinds == [
        "dsync.user.created",
        "dsync.group.created",
        "dsync.group.user_added",
        "dsync.group.user_removed",
        "dsync.user.updated",
        "dsync.user.deleted",
    ]


def test_concurrent_patches_of_one_group_lose_no_member(site: ScimSite) -> None:
    with site.client() as client:
        users = [_user(client, f"u{i}@example.com") for i in range(24)]
        group = client.post(
            "/Groups", json={"displayName": "All", "members": [{"value": u} for u in users[:4]]}
        )
        gid = group.json()["id"]
    errors: list[str] = []

    def worker(chunk: list[str], drop: str) -> None:
        with site.client() as c:
            for user in chunk:
                r = c.patch(
                    f"/Groups/{gid}",
                    json=_patch({"op": "add", "path": "members", "value": [{"value": user}]}),
                )
                if r.status_code != 200:
                    errors.append(r.text)
            r = c.patch(
                f"/Groups/{gid}", json=_patch({"op": "remove", "path": f'members[value eq "{drop}"]'})
            )
            if r.status_code != 200:
                errors.append(r.text)

    threads = [
        threading.Thread(target=worker, args=(users[4 + 5 * i : 9 + 5 * i], users[i])) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with site.client() as client:
        members = {m["value"] for m in client.get(f"/Groups/{gid}").json()["members"]}
    assert members == set(users[4:])


def _seed_users(site: ScimSite, count: int) -> list[str]:
    """Many users at once, through the same ingest path a SCIM POST takes."""
    ids = [f"seed-{i:05d}" for i in range(count)]
    records = {
        i: user_record(
            i, {"userName": f"{i}@example.com", "schemas": [], "emails": [{"value": f"{i}@example.com"}]}
        )
        for i in ids
    }
    with site.rt.engine.begin() as conn:
        assert ingest(conn, site.directory, Delta(users=records), Policy(guard=None)).ok
    return ids


def test_a_ten_thousand_member_group_and_a_thousand_operations(site: ScimSite) -> None:
    ids = _seed_users(site, 10_000)
    statements: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with site.client() as client:
        body = {"displayName": "Everyone", "members": [{"value": i} for i in ids]}
        created = client.post("/Groups", json=body)
        assert created.status_code == 201, created.text[:300]
        gid = created.json()["id"]
        assert len(created.json()["members"]) == 10_000
        ops = [{"op": "remove", "path": f'members[value eq "{i}"]'} for i in ids[:500]]
        ops.append({"op": "add", "path": "members", "value": [{"value": i} for i in ids[:250]]})
        ops += [{"op": "remove", "path": f'members[value eq "{i}"]'} for i in ids[9500:9750]]
        patched = client.patch(f"/Groups/{gid}", json=_patch(*ops))
        assert patched.status_code == 200, patched.text[:300]
        assert len(patched.json()["members"]) == 10_000 - 250 - 250
        sa.event.listen(site.rt.engine, "before_cursor_execute", spy)
        try:
            lean = client.get(f"/Groups/{gid}", params={"excludedAttributes": "members"}).json()
            listed = client.get("/Groups", params={"excludedAttributes": "members"}).json()
        finally:
            sa.event.remove(site.rt.engine, "before_cursor_execute", spy)
    assert "members" not in lean and "members" not in listed["Resources"][0]
    assert not [s for s in statements if "memberships" in s]
    with site.client() as client:
        emptied = client.patch(
            f"/Groups/{gid}", json=_patch({"op": "replace", "path": "members", "value": []})
        )
    assert emptied.json().get("members", []) == []


def test_tokens(site: ScimSite) -> None:
    for header in (site.token, f"bearer {site.token}", f"Bearer   {site.token}"):
        assert httpx.get(f"{site.base}/Users", headers={"Authorization": header}).status_code == 200
    _, other_token = site.another_directory()
    denied = [
        httpx.get(f"{site.base}/Users"),
        httpx.get(f"{site.base}/Users", headers={"Authorization": "Bearer nope"}),
        httpx.get(f"{site.base}/Users", headers={"Authorization": f"Bearer {other_token}"}),
        httpx.get(
            f"{site.url}/scim/v2/directory_unknown/Users", headers={"Authorization": f"Bearer {site.token}"}
        ),
    ]
    for response in denied:
        assert response.status_code == 401
        assert response.json()["schemas"] == [ERROR] and response.json()["status"] == "401"
    kept = rotate_scim_token(site.rt, site.directory, timedelta(minutes=5))
    assert httpx.get(f"{site.base}/Users", headers={"Authorization": site.token}).status_code == 200
    newest = rotate_scim_token(site.rt, site.directory, timedelta(0))
    for old in (site.token, kept):
        assert httpx.get(f"{site.base}/Users", headers={"Authorization": old}).status_code == 401
    assert httpx.get(f"{site.base}/Users", headers={"Authorization": newest}).status_code == 200
    with site.rt.engine.connect() as conn:
        stored = [r.id for r in conn.execute(sa.select(scim_tokens.c.id))]
    assert newest not in stored and all(len(s) == 64 for s in stored)


def test_bad_requests_name_the_field_and_change_nothing(site: ScimSite) -> None:
    other, other_token = site.another_directory()
    with httpx.Client(base_url=f"{site.url}/scim/v2/{other}", headers={"Authorization": other_token}) as c2:
        stranger = _user(c2, "stranger@example.com")
    with site.client() as client:
        alice = _user(client, "alice@example.com", password="Secret-123")
        group = client.post("/Groups", json={"displayName": "Sales"}).json()["id"]
        with site.rt.engine.connect() as conn:
            before = sorted(tuple(r) for r in conn.execute(sa.select(directory_users)))
        cases = [
            (
                client.post(
                    "/Users", content=b"{not json", headers={"Content-Type": "application/scim+json"}
                ),
                400,
                "invalidSyntax",
                "body",
            ),
            (client.post("/Users", json={"name": {"givenName": "x"}}), 400, "invalidValue", "userName"),
            (client.post("/Users", json={"userName": "ALICE@example.com"}), 409, "uniqueness", "userName"),
            (client.get("/Users", params={"filter": 'nickName eq "x"'}), 400, "invalidFilter", "nickName"),
            (client.get("/Users", params={"filter": 'userName eq "a" and'}), 400, "invalidFilter", "filter"),
            (client.get("/Users", params={"count": "ten"}), 400, "invalidValue", "count"),
            (
                client.patch(
                    f"/Groups/{group}",
                    json=_patch({"op": "add", "path": "members", "value": [{"value": stranger}]}),
                ),
                400,
                "invalidValue",
                "members",
            ),
            (
                client.patch(f"/Users/{alice}", json=_patch({"op": "jump", "path": "title"})),
                400,
                "invalidSyntax",
                "op",
            ),
            (client.patch(f"/Users/{alice}", json=_patch({"op": "remove"})), 400, "noTarget", "path"),
            (client.get("/Users/no-such-id"), 404, None, "no-such-id"),
        ]
        for response, status, scim_type, named in cases:
            body = response.json()
            assert response.status_code == status, response.text
            assert body["schemas"] == [ERROR] and body["status"] == str(status)
            assert body.get("scimType") == scim_type
            assert named in body["detail"], body["detail"]
            assert response.headers["content-type"].startswith("application/scim+json")
    admin = httpx.get(  # the admin API writes the queued log entries before reading
        f"{site.url}/api/v1/directories/{site.directory}/scim_requests",
        headers={"Authorization": f"Bearer {org_key(site.rt, site.org)}"},
    ).json()["data"]
    assert {r["status"] for r in admin} >= {201, 400, 404, 409}
    with site.client() as client, site.rt.engine.connect() as conn:
        assert sorted(tuple(r) for r in conn.execute(sa.select(directory_users))) == before
        assert "Secret-123" not in json.dumps(
            [dict(r._mapping) for r in conn.execute(sa.select(directory_users))], default=str
        )
        logged = conn.execute(
            sa.select(scim_requests).where(scim_requests.c.directory_id == site.directory)
        ).all()
    assert "Secret-123" not in str(logged) and site.token not in str(logged)
    first = next(r for r in logged if r.method == "POST" and r.status == 201)
    assert first.user_agent == "roster-tests" and '"password":"[redacted]"' in first.body


def test_put_delete_and_idempotent_member_changes(site: ScimSite) -> None:
    with site.client() as client:
        alice = _user(client, "alice@example.com")
        bob = _user(client, "bob@example.com")
        kept = client.put(f"/Users/{alice}", json={"userName": "Alice@Example.com", "title": "CEO"})
        assert kept.status_code == 200 and kept.json()["title"] == "CEO" and "emails" not in kept.json()
        taken = client.put(f"/Users/{bob}", json={"userName": "ALICE@example.com"})
        assert taken.status_code == 409 and taken.json()["scimType"] == "uniqueness"
        group = client.post("/Groups", json={"displayName": "G", "members": [{"value": alice}]}).json()["id"]
        before = len(event_list(site.rt))
        again = _patch({"op": "add", "path": "members", "value": [{"value": alice}]})
        assert client.patch(f"/Groups/{group}", json=again).status_code == 200
        assert (
            client.patch(
                f"/Groups/{group}", json=_patch({"op": "remove", "path": f'members[value eq "{bob}"]'})
            ).status_code
            == 200
        )
        assert len(event_list(site.rt)) == before  # re-adding a member, removing a non-member: no change
        replaced = client.put(
            f"/Groups/{group}", json={"displayName": "G2", "members": [{"value": bob}]}
        ).json()
        assert [m["value"] for m in replaced["members"]] == [bob]
        assert client.delete(f"/Users/{bob}").status_code == 204
        assert client.delete(f"/Users/{bob}").status_code == 404
        assert client.get(f"/Groups/{group}").json().get("members", []) == []  # a leaver leaves its groups
        assert client.delete(f"/Groups/{group}").status_code == 204
        assert client.delete(f"/Groups/{group}").status_code == 404
        too_big = client.post("/Users", content=b"x" * (site.rt.settings.max_request_bytes + 1))
        assert too_big.status_code == 413 and too_big.json()["schemas"] == [ERROR]


def test_hostile_input_is_refused_with_a_scim_error(site: ScimSite) -> None:
    core = "urn:ietf:params:scim:schemas:core:2.0:User"
    with site.client() as client:
        alice = _user(client, "alice@example.com", **{f"{core}:password": "hunter2"})
        assert "hunter2" not in client.get(f"/Users/{alice}").text
        client.patch(f"/Users/{alice}", json=_patch({"op": "replace", "path": "password", "value": "s3cret"}))
        with site.rt.engine.connect() as conn:
            before = sorted(tuple(r) for r in conn.execute(sa.select(directory_users)))
        raw = {"Content-Type": "application/scim+json"}
        refused = [
            client.post("/Users", content=b"[" * 5000, headers=raw),
            client.post("/Users", content=json.dumps(_nested(200)).encode(), headers=raw),
            client.post("/Users", content=b'{"userName": "n", "title": NaN}', headers=raw),
            client.post("/Users", content=b'{"userName": "n", "title": 1e400}', headers=raw),
            client.post("/Users", json={"userName": "m", "manager": 5}),
            client.post("/Users", json={"userName": "m", "emails": "m@example.com"}),
            client.post("/Users", json={"userName": "x" * 201}),
            client.post("/Users", json={"userName": "nul\u0000byte"}),
            client.post("/Users", json={"userName": 42}),
            client.get("/Users", params={"filter": "(" * 2000 + "userName pr" + ")" * 2000}),
            client.patch(f"/Users/{alice}", json=_patch({"op": "replace", "path": "name", "value": "Bob"})),
        ]
        for response in refused:
            assert response.status_code == 400, response.text[:200]
            assert response.json()["schemas"] == [ERROR]
        with site.rt.engine.connect() as conn:
            assert sorted(tuple(r) for r in conn.execute(sa.select(directory_users))) == before
        undated = client.get("/Users", params={"filter": 'meta.created gt "2020-01-01T00:00:00"'}).json()
        assert undated["totalResults"] == 1  # a date without a zone is UTC
    httpx.post(f"{site.base}/Users", json={"userName": "intruder"}, headers={"Authorization": "Bearer no"})
    admin = httpx.get(
        f"{site.url}/api/v1/directories/{site.directory}/scim_requests",
        headers={"Authorization": f"Bearer {org_key(site.rt, site.org)}"},
    ).json()["data"]
    assert admin and all(r["status"] != 401 for r in admin)  # only what the directory's provider sent
    text = json.dumps(admin)
    assert "hunter2" not in text and "s3cret" not in text and "intruder" not in text


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"userName": "deep"}
    for _ in range(depth):
        value = {"userName": "deep", "x": value}
    return value


def test_what_providers_look_up(site: ScimSite) -> None:
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    with site.client() as client:
        jurgen = _user(client, "JÜRGEN@example.de")
        assert client.post("/Users", json={"userName": "jürgen@example.de"}).status_code == 409
        found = client.get("/Users", params={"filter": 'userName eq "jürgen@EXAMPLE.de"'}).json()
        assert [r["id"] for r in found["Resources"]] == [jurgen]
        quiet = client.post(
            "/Users", json={"userName": "quiet@example.com", enterprise: {"department": "Ops"}}
        )
        assert client.get("/Users", params={"filter": "active eq true"}).json()["totalResults"] == 2
        whole = client.get(f"/Users/{quiet.json()['id']}", params={"attributes": enterprise}).json()
        assert whole[enterprise] == {"department": "Ops"}
        group = client.post("/Groups", json={"displayName": "G", "members": [{"value": jurgen}]}).json()["id"]
        check = {
            "filter": f'id eq "{group}" and members[value eq "{jurgen}"]',
            "excludedAttributes": "members",
        }
        answer = client.get("/Groups", params=check).json()
        assert answer["totalResults"] == 1 and "members" not in answer["Resources"][0]
        cleared = client.patch(
            f"/Users/{jurgen}", json=_patch({"op": "replace", "path": "emails", "value": None})
        ).json()
        assert "emails" not in cleared
