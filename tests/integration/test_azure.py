"""Entra ID directories against the Graph and login emulator (HTTPS, a test CA, msal in front)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from roster.connectors.graph.client import GraphClient
from roster.demo.graph import GraphEmulator, retry_after_date
from roster.demo.graph_tenant import Tenant
from roster.directories import sync_directory
from roster.directories import test_directory as check_connection
from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import directory_groups, directory_users
from tests.integration.test_ingest import state
from tests.support.graph import azure_directory, company, person, register_app
from tests.support.helpers import dump, new_org


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path, Tenant(), page_size=2, members_per_page=3).running() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait as the server says; the tests record the waits instead of sleeping."""
    waits: list[float] = []
    original = GraphClient.__init__

    def init(self: GraphClient, config: Any, sleep: Any = None) -> None:
        original(self, config, sleep=waits.append)

    monkeypatch.setattr(GraphClient, "__init__", init)
    return waits


def _sync(rt: Runtime, d: str, **kwargs: Any) -> Any:
    result = sync_directory(rt, d, force=True, **kwargs)
    assert result.status == "succeeded", result.error
    return result


def test_a_first_sync_reads_users_groups_and_nested_members_across_pages(
    rt: Runtime, graph: GraphEmulator
) -> None:
    ids = company(graph.tenant)
    d = azure_directory(rt, new_org(rt), graph, register_app(graph))
    result = _sync(rt, d)
    got = state(rt, d)
    assert got["users"][ids["Ada Lovelace"]] == ("ada@example.com", "Ada Lovelace", "active", True)
    assert got["users"][ids["Guest"]][0] == "guest@other.com"  # otherMails, never the #EXT# UPN
    everyone = {
        (ids["all"], ids[n]) for n in ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra")
    }
    assert got["memberships"] == everyone | {
        (ids["all"], ids["Guest"]),
        (ids["all"], ids["eng"]),  # a nested group
        (ids["eng"], ids["Ada Lovelace"]),
        (ids["eng"], ids["Grace Hopper"]),
    }
    assert result.counts.get("ignored_members") == 1  # the device
    # the group of seven members came in three appearances, on two pages
    assert sum("groups/delta" in r for r in graph.requests) == 2
    with rt.engine.connect() as conn:
        cursor = repo.get_directory(conn, d)["cursor"]
    assert "deltatoken" in cursor


def _change(tenant: Tenant, rnd: random.Random, ids: dict[str, str]) -> None:
    users = [i for k, i in ids.items() if k not in ("eng", "all") and tenant.visible("users", i)]
    groups = [ids["eng"], ids["all"]]
    pick = rnd.choice(["edit", "add", "member", "unmember", "delete", "restore", "disable", "mail", "rename"])
    if pick == "edit" and users:
        tenant.put_user({"jobTitle": f"Title {rnd.randrange(99)}"}, rnd.choice(users))
    elif pick == "add":
        ids[f"new{len(ids)}"] = person(tenant, f"New{len(ids)} Person")
    elif pick == "member" and users:
        tenant.add_member(rnd.choice(groups), rnd.choice(users))
    elif pick == "unmember":
        group = rnd.choice(groups)
        if tenant.members[group]:
            tenant.remove_member(group, rnd.choice(sorted(tenant.members[group])))
    elif pick == "delete" and users:
        tenant.delete(rnd.choice(users))
    elif pick == "restore":
        gone = [i for i in ids.values() if tenant.objects[i].deleted == "changed"]
        if gone:
            tenant.restore(rnd.choice(gone))
    elif pick == "disable" and users:
        tenant.put_user({"accountEnabled": rnd.random() < 0.5}, rnd.choice(users))
    elif pick == "mail" and users:  # without an address a user is skipped; with one, back (and its groups)
        uid = rnd.choice(users)
        tenant.put_user(
            {"mail": None if tenant.visible("users", uid).get("mail") else f"{uid}@example.com"}, uid
        )
    elif pick == "rename":
        tenant.put_group({"displayName": f"Team {rnd.randrange(99)}"}, rnd.choice(groups))


def group_names(rt: Runtime, d: str) -> dict[str, str]:
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(directory_groups).where(directory_groups.c.directory_id == d))
        return {r.idp_id: r.name for r in rows}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_incremental_runs_equal_a_fresh_full_sync(
    sqlite_rt: Runtime, graph: GraphEmulator, seed: int
) -> None:
    rt = sqlite_rt
    ids = company(graph.tenant)
    app = register_app(graph)
    d = azure_directory(rt, new_org(rt), graph, app)
    _sync(rt, d)
    rnd = random.Random(seed)
    for _round in range(5):
        for _ in range(rnd.randrange(1, 8)):
            _change(graph.tenant, rnd, ids)
        assert _sync(rt, d).kind == "incremental"
        fresh = azure_directory(rt, new_org(rt, f"Fresh {_round}", domain=None), graph, app)
        _sync(rt, fresh)
        mine, theirs = state(rt, d), state(rt, fresh)
        live = {k: v for k, v in mine["users"].items() if v[3]}
        assert live == theirs["users"]
        assert mine["memberships"] == theirs["memberships"]
        assert group_names(rt, d) == group_names(rt, fresh)


def test_a_soft_deleted_user_is_inactive_and_comes_back_with_its_id_and_groups(
    rt: Runtime, graph: GraphEmulator
) -> None:
    ids = company(graph.tenant)
    d = azure_directory(rt, new_org(rt), graph, register_app(graph))
    _sync(rt, d)
    ada = ids["Ada Lovelace"]
    with rt.engine.connect() as conn:
        roster_id = conn.execute(
            sa.select(directory_users.c.id).where(directory_users.c.idp_id == ada)
        ).scalar()
    graph.tenant.delete(ada)
    _sync(rt, d)
    got = state(rt, d)
    assert got["users"][ada][2:] == ("inactive", False)
    assert not any(m == ada for _, m in got["memberships"])
    graph.tenant.restore(ada)
    assert _sync(rt, d).kind == "incremental"
    got = state(rt, d)
    assert got["users"][ada][2:] == ("active", True)
    assert {(ids["eng"], ada), (ids["all"], ada)} <= got["memberships"]
    with rt.engine.connect() as conn:
        again = conn.execute(sa.select(directory_users.c.id).where(directory_users.c.idp_id == ada)).scalar()
    assert again == roster_id


def test_an_update_is_read_again_whole(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    ids = company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    _sync(sqlite_rt, d)
    graph.tenant.put_user({"jobTitle": "Countess"}, ids["Ada Lovelace"])
    graph.requests.clear()
    _sync(sqlite_rt, d)
    assert any(f"id in ('{ids['Ada Lovelace']}')" in r for r in graph.requests)
    with sqlite_rt.engine.connect() as conn:
        row = conn.execute(
            sa.select(directory_users).where(directory_users.c.idp_id == ids["Ada Lovelace"])
        ).one()
    assert (row.job_title, row.email, row.name) == ("Countess", "ada@example.com", "Ada Lovelace")


@pytest.mark.parametrize(
    "retry_after",
    [None, "0", "0.25", retry_after_date(0)],
    ids=["no-header", "seconds", "fractional", "http-date"],
)
def test_throttling_is_retried_as_the_server_asks(
    sqlite_rt: Runtime, graph: GraphEmulator, no_waiting: list[float], retry_after: str | None
) -> None:
    company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    graph.faults.queue += [(429, retry_after), (503, retry_after), (504, retry_after)]
    _sync(sqlite_rt, d)
    assert len(no_waiting) == 3
    if retry_after == "0.25":
        assert no_waiting == [0.25, 0.25, 0.25]
    if retry_after is not None and retry_after != "0.25":  # "0", and a date already past: no wait
        assert no_waiting == [0.0, 0.0, 0.0]
    if retry_after is None:  # exponential backoff with jitter: 0.5-1 s, 1-2 s, 2-4 s
        assert [0.5 <= no_waiting[0] <= 1, 1 <= no_waiting[1] <= 2, 2 <= no_waiting[2] <= 4] == [True] * 3


def test_a_run_that_keeps_failing_applies_nothing(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    _sync(sqlite_rt, d)
    graph.tenant.put_user({"jobTitle": "Changed"}, next(iter(graph.tenant.objects)))
    before = dump(sqlite_rt)
    graph.faults.queue += [(429, "0")] * 10
    result = sync_directory(sqlite_rt, d, force=True)
    assert result.status == "failed"
    assert "429" in (result.error or "")
    assert dump(sqlite_rt) == before


def test_an_expired_delta_link_falls_back_to_a_full_run(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    ids = company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    _sync(sqlite_rt, d)
    graph.tenant.put_user({"jobTitle": "Later"}, ids["Alan Turing"])
    graph.clock = lambda: 10**12  # eight days and more later: the delta token is gone (410)
    result = _sync(sqlite_rt, d)
    assert result.kind == "full"
    assert result.counts.get("fell_back_to_full") == 1
    assert state(sqlite_rt, d)["users"][ids["Alan Turing"]][0] == "alan@example.com"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"secret": "wrong"}, "client_secret: the secret is wrong"),
        (
            {"tenant_id": "00000000-0000-4000-8000-00000000dead"},
            "tenant_id: tenant '00000000-0000-4000-8000-00000000dead' was not found",
        ),
        ({"expired": True}, "client_secret: the secret has expired"),
        (
            {"permissions": frozenset({"GroupMember.Read.All"})},
            "needs the User.Read.All application permission",
        ),
    ],
)
def test_credentials_and_consent_errors_name_the_field(
    sqlite_rt: Runtime, graph: GraphEmulator, change: dict[str, Any], expected: str
) -> None:
    company(graph.tenant)
    app = register_app(graph)
    app.secret_expired = bool(change.get("expired"))
    app.permissions = change.get("permissions", app.permissions)
    settings = {"tenant_id": change["tenant_id"]} if "tenant_id" in change else {}
    d = azure_directory(
        sqlite_rt,
        new_org(sqlite_rt),
        graph,
        app,
        secret=change.get("secret", "s3cr3t~value.from-the-portal"),
        **settings,
    )
    report = check_connection(sqlite_rt, d)
    assert not report.ok
    assert expected in report.detail + " ".join(p.detail for p in report.paths)
    result = sync_directory(sqlite_rt, d, force=True)
    assert result.status == "failed" and result.error_reason == "invalid_credentials"
    assert expected in (result.error or "")
    with sqlite_rt.engine.connect() as conn:
        assert repo.get_directory(conn, d)["state"] == "invalid_credentials"


def test_a_working_connection_reads_a_user_and_a_group(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    report = check_connection(sqlite_rt, d)
    assert report.ok, report
    assert [(p.path, p.ok) for p in report.paths] == [("users", True), ("groups", True)]


def test_an_outage_alerts_the_admins_once(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    from roster.accounts.service import create_account
    from roster.store.schema import mail_outbox
    from roster.sync.access_check import check_access

    company(graph.tenant)
    app = register_app(graph)
    org = new_org(sqlite_rt)
    with sqlite_rt.engine.begin() as conn:
        create_account(conn, org, "boss@other.example", role="admin")
    d = azure_directory(sqlite_rt, org, graph, app)
    _sync(sqlite_rt, d)
    assert check_access(sqlite_rt, d) is True
    app.secret_expired = True
    assert check_access(sqlite_rt, d) is False
    assert check_access(sqlite_rt, d) is False
    with sqlite_rt.engine.connect() as conn:
        subjects = [
            r.subject
            for r in conn.execute(sa.select(mail_outbox).where(mail_outbox.c.organization_id == org))
        ]
        last = repo.get_directory(conn, d)["last_check_error"]
    assert [s for s in subjects if "cannot be reached" in s] == ["Directory Entra cannot be reached"]
    assert "client_secret: the secret has expired" in last


def test_near_real_time_runs_azure_directories(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    from roster.sync.scheduler import NearRealTime

    company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph), near_real_time_seconds=5)
    submitted: list[str] = []
    clock = iter([0.0, 1.0, 10.0])
    near = NearRealTime(sqlite_rt.engine, submitted.append, clock=lambda: next(clock))
    assert near.tick() == []  # not synced yet: the first run is an explicit one
    _sync(sqlite_rt, d)
    assert near.tick() == [d]


def test_many_partial_updates_are_read_again_fifteen_at_a_time(
    sqlite_rt: Runtime, graph: GraphEmulator
) -> None:
    ids = company(graph.tenant)
    people = [person(graph.tenant, f"Extra{i} Person") for i in range(20)]
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    _sync(sqlite_rt, d)
    for i, uid in enumerate(people):
        graph.tenant.put_user({"jobTitle": f"Role {i}"}, uid)
    graph.tenant.put_group({"description": "Renamed team"}, ids["eng"])
    graph.requests.clear()
    result = _sync(sqlite_rt, d)
    assert result.counts["user_updated"] == 20 and result.counts["group_updated"] == 1
    refetches = [r for r in graph.requests if "id in (" in r]
    assert len(refetches) == 3  # 20 users: 15 + 5; one group
    with sqlite_rt.engine.connect() as conn:
        titles = {
            r.job_title
            for r in conn.execute(sa.select(directory_users).where(directory_users.c.directory_id == d))
        }
    assert {f"Role {i}" for i in range(20)} <= titles


def test_a_cursor_naming_another_host_is_refused(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    _sync(sqlite_rt, d)
    forged = '{"users": "https://attacker.example/v1.0/users/delta", "groups": "https://attacker.example/g"}'
    with sqlite_rt.engine.begin() as conn:
        repo.update_directory(conn, d, cursor=forged)
    result = sync_directory(sqlite_rt, d, force=True)
    assert result.status == "failed" and "graph_url:" in (result.error or "")  # no token leaves for it


def test_mapping_overrides_upn_as_email_and_guests(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    ids = company(graph.tenant)
    plain = person(graph.tenant, "Plain Person", mail=None, otherMails=[])
    app = register_app(graph)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, app)
    result = _sync(sqlite_rt, d)
    assert result.counts["skipped"] == 1  # no mail, no otherMails, and the UPN is not allowed
    upn = azure_directory(sqlite_rt, new_org(sqlite_rt, "Upn", domain=None), graph, app, upn_as_email=True)
    _sync(sqlite_rt, upn)
    got = state(sqlite_rt, upn)["users"]
    assert got[plain][0] == "plain@example.onmicrosoft.com"
    assert got[ids["Guest"]][0] == "guest@other.com"  # otherMails first; a guest's #EXT# UPN never
    mapped = azure_directory(
        sqlite_rt,
        new_org(sqlite_rt, "Mapped", domain=None),
        graph,
        app,
        mapping={"user": {"email": "userPrincipalName", "job_title": "userType"}},
    )
    _sync(sqlite_rt, mapped)
    with sqlite_rt.engine.connect() as conn:
        row = conn.execute(
            sa.select(directory_users).where(
                directory_users.c.directory_id == mapped, directory_users.c.idp_id == ids["Ada Lovelace"]
            )
        ).one()
    assert (row.email, row.job_title) == ("ada@example.onmicrosoft.com", "Member")


def test_certificate_credentials_sync(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    from roster.demo.graph import App
    from roster.demo.graph_tenant import new_guid
    from tests.integration.test_graph_emulator import _certificate

    company(graph.tenant)
    key_pem, cert_pem = _certificate()
    app = graph.register(App(client_id=new_guid(), certificate_pem=cert_pem.encode()))
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, app, secret=key_pem, certificate_pem=cert_pem)
    assert _sync(sqlite_rt, d).counts["user_created"] == 5
    with sqlite_rt.engine.connect() as conn:
        stored = repo.get_directory(conn, d)
    assert "PRIVATE KEY" not in str(stored["config"]) and "PRIVATE KEY" not in (stored["secret"] or "")


def test_an_unreachable_login_host_is_named(sqlite_rt: Runtime, graph: GraphEmulator) -> None:
    from roster.demo.slapd import free_port

    company(graph.tenant)
    closed = f"https://localhost:{free_port()}"
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph), login_url=closed)
    report = check_connection(sqlite_rt, d)
    assert not report.ok and f"cannot reach localhost:{closed.rsplit(':', 1)[1]}" in report.detail
    result = sync_directory(sqlite_rt, d, force=True)
    assert result.status == "failed" and result.error_reason == "unreachable"


def test_a_token_serves_runs_until_it_nears_expiry_and_a_test_signs_in_again(
    sqlite_rt: Runtime, graph: GraphEmulator
) -> None:
    company(graph.tenant)
    d = azure_directory(sqlite_rt, new_org(sqlite_rt), graph, register_app(graph))
    _sync(sqlite_rt, d)
    _sync(sqlite_rt, d)
    assert graph.token_requests == 1  # the second run (a new connector) reused the token
    assert check_connection(sqlite_rt, d).ok
    assert graph.token_requests == 2  # a connection test always proves the secret works now
