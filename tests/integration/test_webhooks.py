"""Webhooks to a real HTTP receiver on loopback, verified with the official WorkOS SDK."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from workos import WorkOSClient

from roster.demo.slapd import Slapd, free_port
from roster.directories import sync_directory
from roster.egress import Resolver, pinned_client, webhook_reach
from roster.events import endpoints, feed
from roster.events.webhooks import BATCH, Deliverer, UrlRefused, check_url, prune_events
from roster.runtime import Runtime
from roster.store.schema import events, webhook_endpoints
from tests.conftest import make_runtime
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.receiver import Receiver, receiver

SDK = WorkOSClient(api_key="sk_unused", client_id="client_unused", base_url="http://127.0.0.1:9")


@pytest.fixture
def hook_rt(sqlite_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(
        sqlite_url, tmp_path, webhook_allow_private=True, webhook_timeout_seconds=1.0, webhook_failing_after=3
    )
    yield rt
    rt.engine.dispose()


def all_event_ids(rt: Runtime, org: str) -> list[str]:
    with rt.engine.connect() as conn:
        found = feed.read(conn, [events.c.organization_id == org], limit=10**6).events
    return [e["id"] for e in found]


def due_now(rt: Runtime) -> None:
    """Skip the backoff wait (tests only): make every endpoint due."""
    with rt.engine.begin() as conn:
        conn.execute(sa.update(webhook_endpoints).values(next_attempt_at=None))


def drain(rt: Runtime, rounds: int = 50) -> None:
    deliverer = Deliverer(rt)
    for _ in range(rounds):
        due_now(rt)
        deliverer.run_once()


def setup(
    rt: Runtime, slapd: Slapd, tree: Tree, hook: Receiver, users: int = 3, **kw: object
) -> tuple[str, dict]:  # type: ignore[type-arg]
    org = new_org(rt)
    endpoint = endpoints.create(rt, org, hook.url, kw.pop("types", None))  # type: ignore[arg-type]
    for i in range(users):
        tree.add_user(f"u{i}")
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    return org, endpoint


def test_signed_ordered_deliveries_verify_with_the_sdk(hook_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    with receiver() as hook:
        org, endpoint = setup(hook_rt, slapd, tree, hook)
        drain(hook_rt)
        expected = all_event_ids(hook_rt, org)
        assert hook.ids() == expected and len(expected) == 4  # activated + 3 users
        for item in hook.received:
            event = SDK.webhooks.verify_event(
                event_body=item.body,
                event_signature=item.headers["workos-signature"],
                secret=endpoint["secret"],
            )
            assert event.id == item.headers["idempotency-key"]
        from roster.api.workos import event_json

        with hook_rt.engine.connect() as conn:
            row = conn.execute(sa.select(events).where(events.c.id == expected[1])).mappings().one()
        assert json.loads(hook.received[1].body) == event_json(row)  # the same object GET /events returns


def test_retries_keep_order_and_lose_nothing(hook_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    with receiver() as hook:
        hook.script = [(500, 0, {}), (429, 0, {"Retry-After": "0"}), (200, 1.5, {})]  # the last one times out
        org, endpoint = setup(hook_rt, slapd, tree, hook)
        drain(hook_rt)
        expected = all_event_ids(hook_rt, org)
        # the timed-out attempt did arrive (and was answered late): at least once, never out of order
        assert list(dict.fromkeys(hook.ids())) == expected
        attempts = [a.event_id for a in hook.attempts]
        assert attempts[:4] == [expected[0]] * 4  # 500, 429, timeout, then delivered: nothing overtook it
        with hook_rt.engine.connect() as conn:
            log = endpoints.deliveries(conn, endpoint["id"], event_id=expected[0])
        assert [(d["outcome"], d["status_code"]) for d in reversed(log)] == [
            ("retry", 500),
            ("retry", 429),
            ("retry", None),
            ("delivered", 200),
        ]
        assert "Timeout" in (list(reversed(log))[2]["error"] or "")


def test_connection_refused_then_recovered(hook_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    from roster.accounts.service import create_account

    with receiver() as hook:
        org = new_org(hook_rt)
        with hook_rt.engine.begin() as conn:
            create_account(conn, org, "admin@example.com", role="admin")
        dead = f"http://127.0.0.1:{free_port()}/hooks"
        endpoint = endpoints.create(hook_rt, org, dead, None)
        tree.add_user("ada")
        d = ldap_directory(hook_rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
        assert sync_directory(hook_rt, d).ok
        for _ in range(6):  # failing after 3 (the fixture's setting); alerted once, not per attempt
            due_now(hook_rt)
            Deliverer(hook_rt).run_once()
        with hook_rt.engine.connect() as conn:
            row = endpoints.get(conn, endpoint["id"])
            alerts = conn.execute(
                sa.text("select recipient from mail_outbox where kind = 'webhook_failing'")
            ).all()
            log = endpoints.deliveries(conn, endpoint["id"])
        assert row["failing"] and row["cursor"] is None  # nothing delivered, nothing skipped
        assert [a[0] for a in alerts] == ["admin@example.com"]
        assert {d["outcome"] for d in log} == {"retry"} and "ConnectError" in (log[0]["error"] or "")
        endpoints.update(hook_rt, endpoint["id"], {"url": hook.url})
        drain(hook_rt)
        with hook_rt.engine.connect() as conn:
            assert not endpoints.get(conn, endpoint["id"])["failing"]
        assert hook.ids() == all_event_ids(hook_rt, org)


def test_client_errors_fail_the_event_and_move_on(hook_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    with receiver() as hook:
        hook.script = [(400, 0, {})]
        org, endpoint = setup(hook_rt, slapd, tree, hook)
        drain(hook_rt)
        expected = all_event_ids(hook_rt, org)
        assert hook.ids() == expected[1:]
        with hook_rt.engine.connect() as conn:
            (failed,) = endpoints.deliveries(conn, endpoint["id"], event_id=expected[0])
        assert (failed["outcome"], failed["status_code"]) == ("failed", 400)
        result = endpoints.redeliver_event(hook_rt, endpoint["id"], expected[0])  # by hand, once fixed
        assert result["outcome"] == "delivered" and hook.ids()[-1] == expected[0]
        endpoints.redeliver_since(hook_rt, endpoint["id"], expected[2])
        drain(hook_rt)
        assert hook.ids()[-2:] == expected[2:]


def test_type_filter_and_secret_rotation(hook_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    with receiver() as hook:
        _, endpoint = setup(hook_rt, slapd, tree, hook, types=["dsync.user.created"])
        rotated = endpoints.rotate(hook_rt, endpoint["id"], grace_hours=1)
        drain(hook_rt)
        assert len(hook.received) == 3
        for item in hook.received:
            assert json.loads(item.body)["event"] == "dsync.user.created"
            SDK.webhooks.verify_event(
                event_body=item.body,
                event_signature=item.headers["workos-signature"],
                secret=rotated["secret"],
            )
            SDK.webhooks.verify_event(
                event_body=item.body,
                event_signature=item.headers["workos-signature-previous"],
                secret=endpoint["secret"],
            )


def test_private_addresses_are_refused_by_default(rt: Runtime) -> None:
    org = new_org(rt)
    for url in (
        "http://127.0.0.1:8080/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest",
        "ftp://x.example/",
    ):
        with pytest.raises(UrlRefused, match="url: "):
            endpoints.create(rt, org, url, None)


def test_a_replay_asked_for_during_a_batch_is_not_overwritten_by_it(
    hook_rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    """Check-then-act: a deliverer mid-batch must not write its cursor over a replay just asked for."""
    with receiver() as hook:
        org, endpoint = setup(hook_rt, slapd, tree, hook)
        drain(hook_rt)
        ids = all_event_ids(hook_rt, org)
        busy = Deliverer(hook_rt)
        assert busy._claim(endpoint["id"])  # a deliverer holds the endpoint, mid-batch
        endpoints.redeliver_since(hook_rt, endpoint["id"], ids[1])
        with hook_rt.engine.begin() as conn:
            assert not busy._renew(conn, endpoint["id"], cursor=ids[-1])  # its batch's cursor is refused
        drain(hook_rt)
        assert hook.ids() == ids + ids[1:]  # everything from the second event, once more, in order


def rebinding(*answers: str) -> Resolver:
    """A name server that answers each lookup with the next address (the last one stays)."""
    queue = list(answers)

    def resolve(host: str, port: int, *args: object, **kw: object) -> list[Any]:
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_reached() -> None:
    """DNS rebinding: the check sees a public address, the connection would get 127.0.0.1.
    The client connects to the address it checked itself, so the receiver sees nothing."""
    with receiver() as hook:
        port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
        resolver = rebinding("93.184.216.34", "127.0.0.1")
        url = f"http://hooks.rebind.test:{port}/hooks"
        assert check_url(url, allow_private=False, resolver=resolver) == url  # first answer: public
        client = pinned_client(webhook_reach(False, resolver), timeout=1.0)
        with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1, an address webhooks may not reach"):
            client.post(url, content=b"{}")
        assert hook.attempts == []


def test_the_pinned_client_connects_to_the_address_it_resolved() -> None:
    """The control: the same client with a rule that allows loopback reaches the receiver by a
    name only its resolver knows, so it connected to the checked address, not a second lookup."""
    with receiver() as hook:
        port = int(hook.url.rsplit(":", 1)[1].split("/")[0])
        client = pinned_client(webhook_reach(True, rebinding("127.0.0.1")), timeout=2.0)
        assert client.post(f"http://hooks.rebind.test:{port}/hooks", content=b"{}").status_code == 200
        assert [a.headers["host"] for a in hook.attempts] == [f"hooks.rebind.test:{port}"]


def test_old_events_are_pruned(hook_rt: Runtime, slapd: Slapd, tree: Tree) -> None:
    from datetime import timedelta

    from roster.store.db import utcnow

    with receiver() as hook:
        org, _ = setup(hook_rt, slapd, tree, hook, users=1)
        assert prune_events(hook_rt) == 0
        stored = len(all_event_ids(hook_rt, org))
        assert stored > 0
        assert prune_events(hook_rt, now=utcnow() + timedelta(days=31)) == stored
        assert all_event_ids(hook_rt, org) == []


def test_kill_and_restart_mid_backlog_loses_and_reorders_nothing(sqlite_url: str, tmp_path: Path) -> None:
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from cryptography.fernet import Fernet

    from roster.runtime import open_runtime
    from roster.settings import Settings
    from roster.sync.pipeline import run_sync
    from tests.integration.test_store import StaticConnector, directory, people

    key = Fernet.generate_key().decode()
    rt = open_runtime(Settings(database_url=sqlite_url, secret_key=key, webhook_allow_private=True))
    roster = shutil.which("roster", path=str(Path(sys.executable).parent)) or "roster"
    env = {
        **os.environ,
        "ROSTER_DATABASE_URL": sqlite_url,
        "ROSTER_SECRET_KEY": key,
        "ROSTER_WEBHOOK_ALLOW_PRIVATE": "true",
        "ROSTER_ACCESS_CHECK_DELAY_SECONDS": "3600",
        "ROSTER_WEBHOOK_TIMEOUT_SECONDS": "2",
    }
    with receiver() as hook:
        hook.delay = 0.005
        d = directory(rt)
        with rt.engine.connect() as conn:
            org = conn.execute(sa.text("select organization_id from directories")).scalar()
        endpoints.create(rt, str(org), hook.url, None)
        assert run_sync(rt.engine, d, StaticConnector(people(400))).ok
        expected = all_event_ids(rt, str(org))

        def serve() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [roster, "serve", "--port", str(free_port())],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        first = serve()
        deadline = time.monotonic() + 60
        while len(hook.ids()) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        got_before = len(hook.ids())
        assert 100 <= got_before < len(expected), "the backlog should be part-way when the server dies"
        second = serve()
        try:
            deadline = time.monotonic() + 120
            while set(hook.ids()) != set(expected) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            second.terminate()
            second.wait(30)
        received = hook.ids()
        first_seen = list(dict.fromkeys(received))
        assert first_seen == expected  # every event, in event order
        assert len(received) - len(first_seen) <= BATCH  # at most the batch in flight at the kill came twice
    rt.engine.dispose()


def test_an_endpoint_with_nothing_to_receive_is_left_alone(
    hook_rt: Runtime, slapd: Slapd, tree: Tree
) -> None:
    """A deliverer looks at an idle endpoint once, then leaves it until a new event, a replay or a
    change of the endpoint (it used to claim and release every endpoint every round: a fleet's
    thousand idle endpoints would have cost thousands of writes a second)."""
    from roster.store import repo

    with receiver() as hook:
        org, endpoint = setup(hook_rt, slapd, tree, hook)
        with hook_rt.engine.connect() as conn:
            (directory,) = [d["id"] for d in repo.list_directories(conn, org)]
        deliverer = Deliverer(hook_rt)
        for _ in range(2):
            deliverer.run_once()  # the backlog, then one look that finds nothing more
        assert hook.ids() == all_event_ids(hook_rt, org)
        writes: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("UPDATE WEBHOOK_ENDPOINTS"):
                writes.append(statement)

        sa.event.listen(hook_rt.engine, "before_cursor_execute", count)
        try:
            assert [deliverer.run_once() for _ in range(10)] == [0] * 10 and writes == []
            tree.add_user("late")
            assert sync_directory(hook_rt, directory).ok
            assert deliverer.run_once() == 1 and hook.ids() == all_event_ids(hook_rt, org)  # a new event
            ids = all_event_ids(hook_rt, org)
            endpoints.redeliver_since(hook_rt, endpoint["id"], ids[-1])
            assert deliverer.run_once() == 1 and hook.ids()[-1] == ids[-1]  # a replay
            endpoints.update(hook_rt, endpoint["id"], {"events": ["dsync.user.created"]})
            writes.clear()
            assert deliverer.run_once() == 0 and len(writes) == 2  # a change: one more look (claim, release)
        finally:
            sa.event.remove(hook_rt.engine, "before_cursor_execute", count)
