"""Console sessions over HTTP: CSRF on every form, one organization's cookie never reads
another's pages, sign-in without user enumeration, idle timeout, sign-out, cookie flags."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from roster.accounts.service import create_account
from roster.api.app import create_app
from roster.runtime import Runtime
from roster.scim import tokens as scim_tokens
from roster.store import repo
from roster.store.db import utcnow
from roster.store.schema import mail_outbox, organizations
from roster.store.schema_access import console_sessions
from roster.web.signin import create_operator
from tests.conftest import make_runtime
from tests.support.servers import serve_app

PASSWORD = "a long admin password"
Site = tuple[Runtime, str, dict[str, str]]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Runtime, str, dict[str, str]]]:
    """Two organizations, an admin in each and a directory each (SCIM: no server to reach)."""
    url = f"sqlite:///{tmp_path / 'roster.db'}"
    rt = make_runtime(url, tmp_path, access_check_delay_seconds=3600, webhook_allow_private=True)
    ids: dict[str, str] = {}
    from roster.directories import DirectorySpec, create_directory

    for name in ("a", "b"):
        with rt.engine.begin() as conn:
            ids[name] = org = repo.create_organization(conn, f"Org {name}")["id"]
            create_account(conn, org, f"admin@{name}.test", role="admin", password=PASSWORD)
            create_account(conn, org, f"member@{name}.test", role="member", password=PASSWORD)
        spec = DirectorySpec(org, f"SCIM {name}", "scim", {"provider": "okta"})
        ids[f"dir_{name}"] = create_directory(rt, spec)["id"]
    with serve_app(create_app(rt)) as base:
        yield rt, base, ids
    rt.engine.dispose()


def _form_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sign_in(base: str, email: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=base, follow_redirects=False)
    _clients.append(client)
    token = _form_csrf(client.get("/").text)
    answer = client.post("/sign-in", data={"email": email, "password": password, "csrf": token})
    return client, answer


def test_sign_in_sets_a_hardened_cookie_and_refuses_without_enumeration(
    site: tuple[Runtime, str, dict[str, str]],
) -> None:
    rt, base, _ = site
    client, ok = sign_in(base, "admin@a.test")
    assert ok.status_code == 303 and ok.headers["location"] == "/console/directories"
    cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith("roster_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie  # http here
    token = cookie.split(";")[0].split("=", 1)[1]
    with rt.engine.connect() as conn:  # stored hashed, never as given
        stored = conn.execute(sa.select(console_sessions.c.id)).scalars().all()
    assert len(stored) == 1 and token not in stored[0]
    page = client.get("/console/directories")
    assert page.status_code == 200 and "SCIM a" in page.text and "SCIM b" not in page.text
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    answers = {
        "wrong password": sign_in(base, "admin@a.test", "not the password")[1],
        "unknown address": sign_in(base, "nobody@a.test")[1],
        "not an admin": sign_in(base, "member@a.test")[1],
    }
    messages = {k: re.search(r'id="signin-error">([^<]+)<', r.text) for k, r in answers.items()}
    assert {r.status_code for r in answers.values()} == {401}
    assert len({m.group(1) for m in messages.values() if m}) == 1  # one message for every refusal
    assert not any(
        c.startswith("roster_session=") for r in answers.values() for c in r.headers.get_list("set-cookie")
    )


def test_a_form_without_its_token_is_refused_and_changes_nothing(
    site: tuple[Runtime, str, dict[str, str]],
) -> None:
    rt, base, ids = site
    client, _ = sign_in(base, "admin@a.test")
    for token in (None, "forged"):
        data = {"only_selected": "1"} | ({"csrf": token} if token else {})
        refused = client.post("/console/alerts", data=data)
        assert refused.status_code in (403, 422) and "notify" not in refused.headers.get("location", "")
    with rt.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(organizations.c.notify_only_selected).where(organizations.c.id == ids["a"])
            ).scalar()
            is False
        )
    good = _form_csrf(client.get("/console/alerts").text)
    assert (
        client.post("/console/alerts", data={"only_selected": "1", "csrf": good}).status_code == 200
    )  # warns
    with rt.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(organizations.c.notify_only_selected).where(organizations.c.id == ids["a"])
            ).scalar()
            is True
        )
    other, _ = sign_in(base, "admin@b.test")  # another session's token is not this one's
    assert other.post("/sign-out", data={"csrf": good}).status_code == 403


def test_one_organizations_cookie_cannot_read_anothers_pages(
    site: tuple[Runtime, str, dict[str, str]],
) -> None:
    _, base, ids = site
    client, _ = sign_in(base, "admin@a.test")
    assert client.get(f"/console/directories/{ids['dir_a']}").status_code == 200
    for path in (
        f"/console/directories/{ids['dir_b']}",
        f"/console/directories/{ids['dir_b']}/configuration",
    ):
        answer = client.get(path)
        assert answer.status_code == 404 and "SCIM b" not in answer.text
    token = _form_csrf(client.get("/console/directories").text)
    assert client.post(f"/console/directories/{ids['dir_b']}/sync", data={"csrf": token}).status_code == 404
    client.post(
        "/console/organizations", data={"organization": ids["b"], "csrf": token}
    )  # admins cannot switch
    listed = client.get("/console/directories").text
    assert "SCIM a" in listed and "SCIM b" not in listed


def test_idle_sessions_end_and_sign_out_ends_the_session(site: tuple[Runtime, str, dict[str, str]]) -> None:
    rt, base, _ = site
    client, _ = sign_in(base, "admin@a.test")
    with rt.engine.begin() as conn:
        conn.execute(sa.update(console_sessions).values(last_seen_at=utcnow() - timedelta(hours=1)))
    assert client.get("/console/directories").headers["location"] == "/"
    client, _ = sign_in(base, "admin@a.test")
    token = _form_csrf(client.get("/console/directories").text)
    assert client.post("/sign-out", data={"csrf": token}).headers["location"] == "/"
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(console_sessions)).scalar() == 0


def test_an_operator_picks_an_organization(site: tuple[Runtime, str, dict[str, str]]) -> None:
    rt, base, ids = site
    create_operator(rt, "ops@roster.test", PASSWORD)
    client, ok = sign_in(base, "ops@roster.test")
    assert ok.headers["location"] == "/console/organizations"
    assert client.get("/console/directories").headers["location"] == "/console/organizations"
    picker = client.get("/console/organizations").text
    assert "Org a" in picker and "Org b" in picker
    client.post("/console/organizations", data={"organization": ids["b"], "csrf": _form_csrf(picker)})
    assert "SCIM b" in client.get("/console/directories").text


def test_pages_and_api_docs_use_no_third_party_assets(site: Site) -> None:
    """Air-gapped networks: every script and stylesheet the console and /docs load is Roster's own."""
    _, base, _ = site
    client, _ = sign_in(base, "admin@a.test")
    for path in ("/", "/console/directories", "/console/webhooks", "/docs"):
        html = httpx.get(base + path).text if path in ("/", "/docs") else client.get(path).text
        sources = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html) + re.findall(
            r"url: '([^']+)'", html
        )
        assert sources, path
        for source in sources:
            assert source.startswith("/"), f"{path} loads {source}"
            assert httpx.get(base + source).status_code == 200, source


def test_webhook_endpoints_from_the_console(site: Site) -> None:
    _, base, _ = site
    client, _ = sign_in(base, "admin@a.test")
    token = _form_csrf(client.get("/console/webhooks").text)
    bad = client.post("/console/webhooks", data={"csrf": token, "url": "ftp://example.com/hook"})
    assert bad.status_code == 422 and 'id="url-error"' in bad.text
    made = client.post("/console/webhooks", data={"csrf": token, "url": "http://127.0.0.1:9/roster-hook"})
    secret = re.search(r'id="wh-secret" readonly value="(whsec_[^"]+)"', made.text)
    assert made.status_code == 200 and secret is not None
    listed = client.get("/console/webhooks").text
    assert "http://127.0.0.1:9/roster-hook" in listed and secret.group(1) not in listed  # shown once
    endpoint = re.search(r'href="/console/webhooks/(webhook_[^"]+)"', listed)
    assert endpoint is not None
    rotated = client.post(f"/console/webhooks/{endpoint.group(1)}", data={"csrf": token, "action": "rotate"})
    again = re.search(r'value="(whsec_[^"]+)"', rotated.text)
    assert again is not None and again.group(1) != secret.group(1)
    other, _ = sign_in(base, "admin@b.test")
    assert other.get(f"/console/webhooks/{endpoint.group(1)}").status_code == 404


def test_sync_settings_are_checked_field_by_field(site: Site) -> None:
    rt, base, ids = site
    client, _ = sign_in(base, "admin@a.test")
    token = _form_csrf(client.get("/console/settings").text)
    form = {
        "csrf": token,
        "timezone": "Mars/Olympus",
        "daily_sync_time": "25:00",
        "group_removal_policy": "remove",
    }
    bad = client.post("/console/settings", data=form)
    assert (
        bad.status_code == 422
        and 'id="timezone-error"' in bad.text
        and 'id="daily_sync_time-error"' in bad.text
    )
    with rt.engine.connect() as conn:
        assert repo.get_organization(conn, ids["a"])["timezone"] != "Mars/Olympus"
    form |= {"timezone": "Europe/Prague", "daily_sync_time": "02:30", "incremental_minutes": "15"}
    form |= {"guard_max_share": "0.2", "guard_min_count": "5", "group_removal_policy": "keep_inactive"}
    assert client.post("/console/settings", data=form).status_code == 200
    with rt.engine.connect() as conn:
        org = repo.get_organization(conn, ids["a"])
    assert (org["timezone"], org["daily_sync_time"], org["incremental_minutes"]) == (
        "Europe/Prague",
        "02:30",
        15,
    )
    assert (org["guard_max_share"], org["guard_min_count"], org["group_removal_policy"]) == (
        0.2,
        5,
        "keep_inactive",
    )


def test_disabling_waits_for_the_emailed_confirmation_and_scim_tokens_rotate(site: Site) -> None:
    rt, base, ids = site
    client, _ = sign_in(base, "admin@a.test")
    here = f"/console/directories/{ids['dir_a']}"
    token = _form_csrf(client.get(here).text)
    asked = client.post(f"{here}/lifecycle", data={"csrf": token, "action": "disable"})
    assert asked.status_code == 303 and "e-mailed" in httpx.URL(asked.headers["location"]).params["notice"]
    with rt.engine.connect() as conn:
        assert repo.get_directory(conn, ids["dir_a"])["state"] != "inactive"  # not until confirmed
        kinds = conn.execute(sa.select(mail_outbox.c.kind).where(mail_outbox.c.organization_id == ids["a"]))
        assert set(kinds.scalars()) == {"confirm_disable"}  # to the organization's admin
    rotated = client.post(f"{here}/lifecycle", data={"csrf": token, "action": "rotate_scim_token"})
    new = re.search(r'id="scim-token" readonly value="([^"]+)"', rotated.text)
    assert new is not None
    with rt.engine.connect() as conn:
        assert scim_tokens.authenticate(conn, ids["dir_a"], new.group(1))


def test_one_setup_link_attaches_one_directory_however_often_it_is_submitted(rt: Runtime) -> None:
    """Two submissions of the same setup form at once: the second one's directory is not kept."""
    from roster import setup_links
    from roster.store import repo
    from tests.support.helpers import new_org

    org = new_org(rt)
    with rt.engine.begin() as conn:
        url, _ = setup_links.create(conn, rt.settings, org)
        token = url.rsplit("/", 1)[1]
        link = setup_links.resolve(conn, token)
        assert link is not None and link.directory_id is None
        first = repo.create_directory(conn, org, "first", "scim", {}, None)["id"]
        second = repo.create_directory(conn, org, "second", "scim", {}, None)["id"]
        assert setup_links.attach(conn, link, first) is True
        assert setup_links.attach(conn, link, second) is False  # the link already set one up
        again = setup_links.resolve(conn, token)
        assert again is not None and again.directory_id == first


def test_new_connection_settings_are_tested_before_the_console_saves_them(site: Site) -> None:
    """A changed server is tried first: when nothing answers, the form says which field and why and
    nothing is stored; "Save without testing" stores it as given. Saving unchanged settings (a
    rename) tests nothing."""
    from roster.demo.slapd import free_port

    rt, base, ids = site
    from roster.directories import DirectorySpec, create_directory

    config = {
        "url": "ldap://127.0.0.1:9",
        "bind_dn": "cn=reader",
        "search_paths": ["OU=People, DC=a, DC=test"],
    }
    d = create_directory(rt, DirectorySpec(ids["a"], "LDAP a", "ldap", config, "pw"))["id"]
    create_operator(rt, "ops@roster.test", PASSWORD)
    client, _ = sign_in(base, "ops@roster.test")
    client.post(
        "/console/organizations",
        data={"organization": ids["a"], "csrf": _form_csrf(client.get("/console/organizations").text)},
    )
    form = {
        "name": "LDAP a (renamed)",
        "url": "ldap://127.0.0.1:9",
        "bind_dn": "cn=reader",
        "search_paths": "OU=People, DC=a, DC=test",
        "csrf": _form_csrf(client.get(f"/console/directories/{d}/configuration").text),
    }
    typo = client.post(
        f"/console/directories/{d}/configuration", data={**form, "near_real_time_seconds": "soon"}
    )
    assert typo.status_code == 422 and 'id="near_real_time_seconds-error"' in typo.text  # the form, marked
    renamed = client.post(f"/console/directories/{d}/configuration", data=form)
    errors = re.findall(r'class="error"[^>]*>([^<]*)', renamed.text)
    assert renamed.status_code == 303, (
        errors
    )  # unchanged connection: nothing to test (port 9 answers nothing)
    closed = f"ldap://127.0.0.1:{free_port()}"
    moved = client.post(
        f"/console/directories/{d}/configuration", data={**form, "url": closed, "bind_password": "pw2"}
    )
    assert moved.status_code == 422
    error = re.search(r'id="url-error"[^>]*>(.*?)</', moved.text, re.S)
    assert (
        error is not None
        and "nothing was saved" in error.group(1)
        and "Save without testing" in error.group(1)
    )
    with rt.engine.connect() as conn:
        kept = repo.get_directory(conn, d)
    assert kept["config"]["url"] == "ldap://127.0.0.1:9" and rt.box.open(kept["secret"]) == "pw"
    stored = client.post(
        f"/console/directories/{d}/configuration",
        data={**form, "url": closed, "bind_password": "pw2", "no_test": "1"},
    )
    assert stored.status_code == 303
    with rt.engine.connect() as conn:
        assert repo.get_directory(conn, d)["config"]["url"] == closed


def test_an_operator_finds_the_organizations_that_need_attention(site: Site) -> None:
    """A fleet's operator: organizations found by name or domain; one whose directory is unreachable
    comes first with its count, and "only those that need attention" leaves the others out."""
    from roster.directories import DirectorySpec, create_directory
    from roster.store.schema import directories

    rt, base, _ = site
    with rt.engine.begin() as conn:
        c = repo.create_organization(conn, "Org c", "c.example")["id"]
    config = {
        "url": "ldap://127.0.0.1:9",
        "bind_dn": "cn=reader",
        "search_paths": ["OU=People, DC=c, DC=test"],
    }
    d = create_directory(rt, DirectorySpec(c, "LDAP c", "ldap", config, "pw"))["id"]
    with rt.engine.begin() as conn:
        lost = {"last_check_at": utcnow(), "last_check_ok": False, "last_check_error": "unreachable"}
        conn.execute(sa.update(directories).where(directories.c.id == d).values(**lost))
    create_operator(rt, "ops@roster.test", PASSWORD)
    client, _ = sign_in(base, "ops@roster.test")

    def listed(**params: str) -> list[list[str]]:
        """Each row's name, domain, directories and attention cells, as text."""
        html = client.get("/console/organizations", params=params).text
        rows = re.findall(r"<tr><td>(.*?)</tr>", html, re.S)
        cells = [re.findall(r"<td>(.*?)</td>", "<td>" + row, re.S)[:4] for row in rows]
        return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in row] for row in cells]

    everyone = listed()
    assert everyone == [
        ["Org c", "c.example", "1", "1"],  # the one needing attention first, with its count
        ["Org a", "—", "1", "—"],
        ["Org b", "—", "1", "—"],
    ]
    assert [r[0] for r in listed(q="C.EXAMPLE")] == ["Org c"]  # by domain, any case
    assert [r[0] for r in listed(q="org b")] == ["Org b"]
    assert [r[0] for r in listed(attention="true")] == ["Org c"]
    assert "No organization matches" in client.get("/console/organizations", params={"q": "zzz"}).text
