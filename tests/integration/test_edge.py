"""Checks at the edge, the same on SQLite and PostgreSQL: a chunked body is held to the size limit as
it streams, and NUL characters (which PostgreSQL refuses in text) get a 4xx naming where they are,
in paths, query parameters, JSON fields and console forms, with nothing stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from roster.accounts.service import create_account, get_account, update_account
from roster.api.app import create_app
from roster.directories import DirectorySpec, create_directory
from roster.runtime import Runtime
from roster.store import repo
from tests.conftest import make_runtime
from tests.support.servers import serve_app


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, str, str]]:
    """(runtime, base URL, admin key) with a 64 KB body limit, on each store."""
    rt = make_runtime(database_url, tmp_path, max_request_bytes=65536, access_check_delay_seconds=3600)
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, None, "admin")
    with serve_app(create_app(rt)) as base:
        yield rt, base, key
    rt.engine.dispose()


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_chunked_body_is_held_to_the_limit_as_it_streams(served: tuple[Runtime, str, str]) -> None:
    rt, base, key = served
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    big = httpx.post(f"{base}/api/v1/organizations", content=_chunks(200_000), headers=auth)
    assert big.status_code == 413 and "body" in big.json()["message"]
    small = httpx.post(f"{base}/api/v1/organizations", content=iter([b'{"name": ', b'"Acme"}']), headers=auth)
    assert small.status_code == 201 and small.json()["name"] == "Acme"
    with rt.engine.connect() as conn:
        assert [o["name"] for o in repo.list_organizations(conn)] == ["Acme"]


def test_nul_characters_get_a_4xx_naming_where_they_are(served: tuple[Runtime, str, str]) -> None:
    rt, base, key = served
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        body = api.post("/api/v1/organizations", json={"name": "Ac\x00me"})
        assert body.status_code == 422 and body.json()["errors"][0]["field"] == "name"
        path = api.get("/api/v1/directories/directory_01%00X")
        assert path.status_code == 400 and path.json()["message"].startswith("path:")
        query = api.get("/directory_users", params={"directory": "d\x00"})
        assert query.status_code == 400 and "'directory'" in query.json()["message"]
        nested = api.post("/api/v1/organizations", json={"name": "Acme", "domain": "a\x00.example"})
        assert nested.status_code == 422
    form = httpx.post(f"{base}/sign-in", data={"email": "a\x00@x.test", "password": "p", "csrf": "c"})
    assert form.status_code == 400 and "'email'" in form.json()["message"]
    with rt.engine.connect() as conn:
        assert repo.list_organizations(conn) == []


def test_explicit_nulls_are_refused_where_a_field_cannot_be_empty(served: tuple[Runtime, str, str]) -> None:
    rt, base, key = served
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
        account = create_account(conn, org, "ada@acme.test", name="Ada", role="member")
        update_account(conn, account["id"], org, {"disabled": True})
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        for field in ("email", "disabled", "role", "data"):
            refused = api.patch(f"/api/v1/accounts/{account['id']}", json={field: None})
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field
        cleared = api.patch(f"/api/v1/accounts/{account['id']}", json={"name": None})
        assert cleared.status_code == 200 and cleared.json()["name"] is None
        refused = api.patch(f"/api/v1/organizations/{org}", json={"timezone": None})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "timezone"
    with rt.engine.connect() as conn:
        row = get_account(conn, account["id"])
    assert (row["email"], row["disabled"], row["role"]) == ("ada@acme.test", True, "member")


def test_garbage_cursors_are_refused(served: tuple[Runtime, str, str]) -> None:
    _, base, key = served
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        for path, name in (("/directories", "after"), ("/directories", "before"), ("/events", "after")):
            params = {name: "zzz' OR 1=1", "events": "dsync.user.created"}
            refused = api.get(path, params=params)
            assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == name
        fine = {"after": "directory_01ARZ3NDEKTSV4RRFFQ69G5FAV"}
        assert api.get("/directories", params=fine).status_code == 200
        run = {"after": "event_01ARZ3NDEKTSV4RRFFQ69G5FAV.12", "events": "dsync.user.created"}
        assert api.get("/events", params=run).status_code == 200  # inside a membership run


def test_sync_log_time_filters_honour_utc_offsets(served: tuple[Runtime, str, str]) -> None:
    rt, base, key = served
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
    made = create_directory(rt, DirectorySpec(org, "Okta", "scim", {"provider": "okta"}))
    before = datetime.now(UTC) - timedelta(seconds=5)
    user = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada@acme.test",
        "active": True,
    }
    scim = httpx.post(
        f"{base}/scim/v2/{made['id']}/Users",
        json=user,
        headers={"Authorization": f"Bearer {made['scim_token']}"},
    )
    assert scim.status_code == 201
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:

        def entries(since: str) -> int:
            answer = api.get("/api/v1/sync_log", params={"directory_id": made["id"], "since": since})
            assert answer.status_code == 200
            return len(answer.json()["data"])

        in_utc = before.strftime("%Y-%m-%dT%H:%M:%SZ")
        in_prague = before.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="seconds")
        assert entries(in_utc) > 0 and entries(in_prague) == entries(in_utc)
        later = (before + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
        assert entries(later) == 0


def test_api_keys_are_listed_with_their_last_use_and_revoked(served: tuple[Runtime, str, str]) -> None:
    rt, base, admin = served
    with rt.engine.begin() as conn:
        acme = repo.create_organization(conn, "Acme")["id"]
        other = repo.create_organization(conn, "Other")["id"]
        acme_row, acme_key = repo.create_api_key(conn, acme, "acme app")
        other_row, other_key = repo.create_api_key(conn, other, "other app")
    as_acme = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {acme_key}"})
    as_admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"})
    with as_acme, as_admin:
        mine = as_acme.get("/api/v1/api_keys").json()["data"]
        assert [k["id"] for k in mine] == [acme_row["id"]] and acme_key not in str(mine)
        assert mine[0]["hint"] == f"...{acme_key[-4:]}"
        for _ in range(50):  # the first use is recorded off the request, a moment later
            listed = {k["id"]: k for k in as_admin.get("/api/v1/api_keys").json()["data"]}
            if listed[acme_row["id"]]["last_used_at"]:
                break
            time.sleep(0.1)
        assert listed[acme_row["id"]]["last_used_at"] and listed[other_row["id"]]["last_used_at"] is None
        assert (
            as_acme.delete(f"/api/v1/api_keys/{other_row['id']}").status_code == 404
        )  # another organization's
        admin_id = next(k for k, v in listed.items() if v["organization_id"] is None)
        assert as_acme.delete(f"/api/v1/api_keys/{admin_id}").status_code == 404
        revoked = as_admin.delete(f"/api/v1/api_keys/{acme_row['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert as_acme.get("/api/v1/api_keys").status_code == 401
    assert (
        httpx.get(f"{base}/directories", headers={"Authorization": f"Bearer {other_key}"}).status_code == 200
    )


def test_json_nested_past_the_limit_is_refused_before_it_is_stored(served: tuple[Runtime, str, str]) -> None:
    rt, base, key = served
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]

    def nested(levels: int) -> dict[str, object]:
        value: dict[str, object] = {"leaf": 1}
        for _ in range(levels - 1):
            value = {"n": value}
        return value

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        deep = {"email": "ada@acme.io", "data": nested(300)}
        refused = api.post(f"/api/v1/organizations/{org}/accounts", json=deep)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "data"
        fine = api.post(
            f"/api/v1/organizations/{org}/accounts", json={"email": "ada@acme.io", "data": nested(20)}
        )
        assert fine.status_code == 201, fine.text
        assert api.get(f"/api/v1/accounts/{fine.json()['id']}").status_code == 200  # and it reads back


def test_numbers_past_what_the_store_holds_get_a_422(served: tuple[Runtime, str, str]) -> None:
    rt, base, key = served
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme")["id"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        for field in ("guard_min_count", "incremental_minutes"):
            refused = api.patch(f"/api/v1/organizations/{org}", json={field: 2**40})
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field
    with rt.engine.connect() as conn:
        assert repo.get_organization(conn, org)["guard_min_count"] is None
