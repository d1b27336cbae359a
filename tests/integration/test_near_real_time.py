"""Near-real-time mode: a change in the directory reaches Roster's events within seconds."""

from __future__ import annotations

import time

import httpx

from roster.api.app import create_app
from roster.demo.samba import SambaDC
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from roster.sync.scheduler import NearRealTime
from tests.support.ad_tree import AdTree
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app


def test_tick_submits_due_directories(sqlite_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    org = new_org(sqlite_rt)
    fast = ldap_directory(
        sqlite_rt,
        org,
        slapd.url,
        slapd.admin_dn,
        slapd.admin_password,
        [tree.search_path],
        near_real_time_seconds=10,
    )
    ldap_directory(sqlite_rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    now = [100.0]
    submitted: list[str] = []
    scheduler = NearRealTime(sqlite_rt.engine, submitted.append, clock=lambda: now[0])
    assert scheduler.tick() == []  # never synced yet ("linking"): the first run is an explicit one
    tree.add_user("ada")
    assert sync_directory(sqlite_rt, fast).ok
    assert scheduler.tick() == [fast]
    now[0] += 5
    assert scheduler.tick() == []
    now[0] += 5
    assert scheduler.tick() == [fast]
    assert submitted == [fast, fast]

    def busy(_directory: str) -> None:
        raise RuntimeError("already running")

    failing = NearRealTime(sqlite_rt.engine, busy, clock=lambda: now[0])
    assert failing.tick() == []  # a busy directory is skipped, not fatal


def test_a_change_shows_up_in_events_within_seconds(sqlite_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    rt = sqlite_rt
    ada = tree.add_user("ada")
    org = new_org(rt)
    d = ldap_directory(
        rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path], near_real_time_seconds=2
    )
    assert sync_directory(rt, d).ok
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org, "t")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        tree.replace(ada, "title", ["Chief"])
        deadline = time.monotonic() + 60  # generous: shared machines are slow; typical is a few seconds
        found = []
        while not found and time.monotonic() < deadline:
            page = http.get("/events", params={"events": "dsync.user.updated", "limit": 100}).json()
            found = [e for e in page["data"] if e["data"]["job_title"] == "Chief"]
            time.sleep(0.2)
        assert found, "the change never reached the events API"
        with rt.engine.connect() as conn:
            runs = repo.list_runs(conn, d)
        assert any(r["trigger"] == "near_real_time" and r["kind"] == "incremental" for r in runs)


def test_an_active_directory_change_shows_up_within_seconds(
    sqlite_rt: Runtime, samba_dc: SambaDC, ad_tree: AdTree
) -> None:
    rt = sqlite_rt
    ada = ad_tree.add_user("ada")
    ad_tree.add_user("bob")  # so that disabling ada is not "every user leaving" (the deletion guard)
    org = new_org(rt)
    d = ldap_directory(
        rt,
        org,
        samba_dc.ldaps_url,
        samba_dc.admin_dn,
        samba_dc.admin_password,
        [ad_tree.search_path],
        type="active_directory",
        ca_file=str(samba_dc.ca_file),
        near_real_time_seconds=2,
    )
    assert sync_directory(rt, d).ok
    with rt.engine.begin() as conn:
        _, key = repo.create_api_key(conn, org, "t")
    with (
        serve_app(create_app(rt)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        ad_tree.replace(ada, "userAccountControl", [b"514"])  # disabled in AD
        deadline = time.monotonic() + 60
        found: list[dict[str, object]] = []
        while not found and time.monotonic() < deadline:
            page = http.get("/events", params={"events": "dsync.user.updated", "limit": 100}).json()
            found = [e for e in page["data"] if e["data"]["state"] == "inactive"]
            time.sleep(0.2)
        assert found, "the disabled user never reached the events API"
