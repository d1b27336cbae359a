"""The admin console in a real browser: Debian's chromium (Playwright) against ``roster serve`` on
loopback, reading a real slapd. Each page is checked with axe-core; screenshots go to
``$ROSTER_SCREENSHOTS`` when it is set (the README's come from there)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from roster.accounts import lifecycle
from roster.accounts.service import create_account
from roster.demo.slapd import Slapd, free_port
from roster.directories import DirectorySpec, create_directory
from roster.notify.mail import SEALED, box_for, readable
from roster.runtime import open_runtime
from roster.settings import Settings
from roster.store import repo
from roster.store.db import make_engine
from roster.store.schema import mail_outbox, organizations
from tests.support.console import chromium, roster_serve, serious_violations
from tests.support.ldap_tree import Tree

pytestmark = pytest.mark.slapd
PASSWORD = "a long admin password"


class Console:
    """The page under test, with an accessibility check and a screenshot of every page it visits."""

    def __init__(self, page: Any, base: str, shots: Path | None) -> None:
        self.page, self.base, self.shots = page, base, shots

    def check(self, name: str) -> None:
        assert serious_violations(self.page) == [], f"accessibility of the {name} page"
        if self.shots is not None:
            self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text())


def _store(tmp_path: Path, slapd: Slapd, tree: Tree) -> tuple[dict[str, str], str, str]:
    """An organization with an admin and an LDAP directory; (server env, organization, directory)."""
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'roster.db'}"
    rt = open_runtime(Settings(database_url=url, secret_key=key, key_file=tmp_path / "k"))  # type: ignore[call-arg]
    with rt.engine.begin() as conn:
        org = repo.create_organization(conn, "Acme", "example.com")["id"]
        create_account(conn, org, "ada@acme.test", name="Ada Admin", role="admin", password=PASSWORD)
    settings = {"url": slapd.url, "bind_dn": slapd.admin_dn, "search_paths": [tree.search_path]}
    d = create_directory(rt, DirectorySpec(org, "Corp LDAP", "ldap", settings, slapd.admin_password))
    rt.engine.dispose()
    env = {
        "ROSTER_DATABASE_URL": url,
        "ROSTER_SECRET_KEY": key,
        "ROSTER_ACCESS_CHECK_DELAY_SECONDS": "3600",
        "ROSTER_PUBLIC_URL": "http://127.0.0.1",
    }
    return env, org, d["id"]


def test_an_admin_configures_syncs_and_approves_in_the_browser(
    tmp_path: Path, slapd: Slapd, tree: Tree
) -> None:
    for uid, given in (("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")):
        tree.add_user(uid, given=given, sn="Example")
    env, org, d = _store(tmp_path, slapd, tree)
    shots = Path(os.environ["ROSTER_SCREENSHOTS"]) if os.environ.get("ROSTER_SCREENSHOTS") else None
    with roster_serve(env) as base, chromium() as browser:
        ui = Console(browser.new_page(viewport={"width": 1200, "height": 900}), base, shots)
        _sign_in(ui)
        _configure(ui, d, tree)
        _sync_and_follow(ui, d, tree)
        _held_and_approved(ui, env, org, d, tree)
        _on_a_phone(ui, d)
        ui.page.get_by_role("button", name="Sign out").click()
        assert ui.page.get_by_role("heading", name="Sign in to Roster").is_visible()
        ui.page.goto(f"{base}/console/directories")
        assert ui.page.url == f"{base}/"  # signed out: back to the sign-in page


def _sign_in(ui: Console) -> None:
    p = ui.page
    p.goto(ui.base)
    ui.check("sign-in")
    p.get_by_label("E-mail address").fill("ada@acme.test")
    p.get_by_label("Password").fill("not the password")
    p.get_by_role("button", name="Sign in").click()
    assert "not right" in ui.text("#signin-error")
    p.get_by_label("Password").fill(PASSWORD)
    p.get_by_role("button", name="Sign in").click()
    assert p.get_by_role("heading", name="Directories").is_visible()
    assert "Corp LDAP" in ui.text("table") and "Not yet synced" in ui.text("table")
    ui.check("directories")


def _configure(ui: Console, d: str, tree: Tree) -> None:
    p = ui.page
    p.get_by_role("link", name="Corp LDAP").click()
    p.get_by_role("link", name="Configuration").click()
    assert p.get_by_role("heading", name="Configuration » Directory").is_visible()
    broken = tree.search_path.replace(", DC=", " DC=", 1)  # a missing comma
    p.get_by_label("LDAP search paths, one per line").fill(broken)
    p.get_by_role("button", name="Save").click()
    error = ui.text("#search_paths-error")
    assert "Line 1" in error and broken in error
    assert p.locator("#search_paths").get_attribute("aria-invalid") == "true"
    assert p.locator("#search_paths-error mark").count() == 1  # the offending element, highlighted
    ui.check("configuration-error")
    p.get_by_label("LDAP search paths, one per line").fill(tree.search_path)
    p.get_by_role("button", name="Save").click()
    assert "Saved" in ui.text("[role=status]")
    assert "cannot sign in" in ui.text("main")  # a plain ldap:// directory: the admin is told
    p.get_by_role("button", name="Test connection").click()
    assert "succeeded" in ui.text("#test-title")
    assert tree.search_path in ui.text("section.panel table") and "found" in ui.text("section.panel table")
    ui.check("configuration")


def _sync_and_follow(ui: Console, d: str, tree: Tree) -> None:
    p = ui.page
    p.goto(f"{ui.base}/console/directories/{d}")
    ui.check("directory")
    p.get_by_role("button", name="Sync now").click()
    assert re.search(r"/console/runs/sync_run_", p.url)
    new = ui.text("table >> nth=0")
    assert "Alice Example" in new and "alice@example.com" in new and "carol@example.com" in new
    ui.check("run")
    tree.delete(tree.user_dn("bob"))
    p.goto(f"{ui.base}/console/directories/{d}")
    p.get_by_role("button", name="Sync now").click()
    p.goto(f"{ui.base}/console/directories/{d}")
    gone = p.get_by_role("table", name=re.compile("Deleted from directory")).inner_text()
    assert "Bob Example" in gone and "bob@example.com" in gone
    assert "alice" not in gone
    ui.check("directory-synced")
    p.goto(f"{ui.base}/console/directories/{d}/log")
    assert p.locator("tbody tr").count() >= 2
    ui.check("sync-log")
    p.goto(f"{ui.base}/console/accounts")
    assert "carol@example.com" in ui.text("table")
    ui.check("accounts")
    p.goto(f"{ui.base}/console/groups")
    ui.check("groups")
    p.goto(f"{ui.base}/console/alerts")
    ui.check("alerts")


def _on_a_phone(ui: Console, d: str) -> None:
    """Readable at phone width: nothing wider than the screen, and still accessible."""
    p = ui.page
    p.set_viewport_size({"width": 375, "height": 800})
    for path in (
        "/console/directories",
        f"/console/directories/{d}",
        f"/console/directories/{d}/configuration",
    ):
        p.goto(ui.base + path)
        for part in ("header", "main"):
            box = p.locator(part).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 376, (path, part, box)
        ui.check("phone-" + path.rsplit("/", 1)[-1])
    p.set_viewport_size({"width": 1200, "height": 900})


def _held_and_approved(ui: Console, env: dict[str, str], org: str, d: str, tree: Tree) -> None:
    """A deletion past the organization's guard waits on the page for an admin's decision."""
    engine = make_engine(env["ROSTER_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(
            sa.update(organizations)
            .where(organizations.c.id == org)
            .values(guard_max_share=0.1, guard_min_count=1)
        )
    engine.dispose()
    tree.delete(tree.user_dn("carol"))
    p = ui.page
    p.goto(f"{ui.base}/console/directories/{d}")
    p.get_by_role("button", name="Sync now").click()
    assert p.get_by_role("heading", name="Approval needed").is_visible()
    held = p.get_by_role("table", name=re.compile("Deleted from directory")).inner_text()
    assert "Carol Example" in held and "carol@example.com" in held
    ui.check("approval")
    p.get_by_role("button", name="Approve").click()
    assert "approved" in ui.text("h1")
    for _ in range(100):  # the server's worker applies the approved plan
        p.goto(f"{ui.base}/console/directories/{d}")
        if (
            "carol@example.com"
            in p.get_by_role("table", name=re.compile("Deleted from directory")).inner_text()
        ):
            break
        p.wait_for_timeout(200)
    else:
        pytest.fail("the approved run was not applied")


def test_an_emailed_recovery_link_explains_itself_and_waits_for_a_click(
    tmp_path: Path, slapd: Slapd, tree: Tree
) -> None:
    """The lost-connection e-mail's link opens a page; opening it changes nothing, the button does."""
    env, _, d = _store(tmp_path, slapd, tree)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    engine = make_engine(env["ROSTER_DATABASE_URL"])
    settings = Settings(public_url=base, secret_key=env["ROSTER_SECRET_KEY"])  # type: ignore[call-arg]
    with engine.begin() as conn:
        row = repo.get_directory(conn, d)
        assert lifecycle.access_lost(conn, settings, row, "connection refused") == 1
        stored = conn.execute(
            sa.select(mail_outbox.c.body).where(mail_outbox.c.kind == "access_lost")
        ).scalar_one()
    engine.dispose()
    assert "/actions/" not in stored and stored.startswith(SEALED)  # the link is not kept in clear
    body = readable(stored, box_for(settings))
    found = re.search(rf"{re.escape(base)}/actions/\S+", body)
    assert found is not None
    with roster_serve(env, port), chromium() as browser:
        page = browser.new_page()
        page.goto(found.group(0))
        assert page.get_by_role("heading", name="Recover access to Roster").is_visible()
        assert "Corp LDAP" in page.inner_text("main") and serious_violations(page) == []
        page.goto(found.group(0))  # opened twice (mail scanners do): still nothing done
        page.get_by_label("New password").fill("a new local password")
        page.get_by_label("The same password again").fill("a different one!")
        page.get_by_role("button", name="Recover access").click()
        assert "differ" in page.get_by_role("alert").inner_text()
        page.get_by_label("New password").fill("a new local password")
        page.get_by_label("The same password again").fill("a new local password")
        page.get_by_role("button", name="Recover access").click()
        assert page.get_by_role("heading", name="Done").is_visible()
        page.goto(found.group(0))
        assert page.get_by_role("heading", name="This link cannot be used").is_visible()
        page.goto(base)
        page.get_by_label("E-mail address").fill("ada@acme.test")
        page.get_by_label("Password").fill("a new local password")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("heading", name="Directories").is_visible()


def test_an_operator_finds_an_organization_in_the_browser(tmp_path: Path, slapd: Slapd, tree: Tree) -> None:
    """An operator lands on the organizations, searches the fleet and administers the one found."""
    from roster.web.signin import create_operator

    env, _, _ = _store(tmp_path, slapd, tree)
    rt = open_runtime(
        Settings(  # type: ignore[call-arg]
            database_url=env["ROSTER_DATABASE_URL"],
            secret_key=env["ROSTER_SECRET_KEY"],
            key_file=tmp_path / "k",
        )
    )
    with rt.engine.begin() as conn:
        for n in range(12):
            repo.create_organization(conn, f"Customer {n}", f"customer{n}.example")
    create_operator(rt, "ops@roster.test", PASSWORD)
    rt.engine.dispose()
    with roster_serve(env) as base, chromium() as browser:
        ui = Console(browser.new_page(viewport={"width": 1200, "height": 900}), base, None)
        p = ui.page
        p.goto(base)
        p.get_by_label("E-mail address").fill("ops@roster.test")
        p.get_by_label("Password").fill(PASSWORD)
        p.get_by_role("button", name="Sign in").click()
        assert p.get_by_role("heading", name="Organizations").is_visible()
        ui.check("organizations")
        p.get_by_label("Find an organization").fill("acme")
        p.get_by_role("button", name="Search").click()
        assert p.locator("tbody tr").count() == 1 and "Acme" in ui.text("tbody")
        p.get_by_role("button", name="Administer Acme").click()
        assert p.get_by_role("heading", name="Directories").is_visible() and "Corp LDAP" in ui.text("table")
