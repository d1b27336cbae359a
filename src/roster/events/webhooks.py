"""Webhook delivery: signed, in order per endpoint, at least once, surviving restarts.

Each endpoint has a cursor (the last event it is done with). A deliverer leases the
endpoint, POSTs the next event after the cursor, and moves the cursor only when the
receiver answered 2xx (or the event finally failed), so a later event never reaches
an endpoint before an earlier one, and a crash at any point only repeats a delivery
(receivers deduplicate with the ``Idempotency-Key`` header, the event id).

Retries: network errors, timeouts, 408, 429 (``Retry-After`` honoured) and 5xx back
off exponentially with jitter for ``webhook_retry_hours``; any other 4xx fails the
event at once. After ``webhook_failing_after`` failed attempts in a row the endpoint
is marked failing and its admins get one e-mail; a delivery that works clears it.

The signature is WorkOS's: ``WorkOS-Signature: t=<unix ms>, v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>``, so ``workos.webhooks.verify_event`` accepts it. For a grace period
after a rotation, ``WorkOS-Signature-Previous`` carries the same signature made with
the old secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from roster.crypto import SecretBox
from roster.egress import Refused, Resolver, pinned_client, webhook_reach
from roster.events import feed
from roster.events.objects import prune_objects
from roster.ids import new_id, new_ids
from roster.runtime import Runtime
from roster.store.db import as_utc, iso, utcnow
from roster.store.schema import events, webhook_deliveries, webhook_endpoints

log = logging.getLogger(__name__)
BATCH = 50  # events per transaction: a crash repeats at most this many deliveries
ROUNDS = 20  # batches per endpoint per round, so one busy endpoint does not starve the others
RETRYABLE = {408, 429}
Attempt = tuple[str, int, str, int | None, float, str | None]  # event, attempt, outcome, status, ms, error


class UrlRefused(ValueError):
    pass


def check_url(url: str, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> str:
    """An http(s) URL whose host resolves only to addresses webhooks may reach (see egress)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"url: {url!r} must be an http:// or https:// URL with a host")
    try:
        webhook_reach(allow_private, resolver).addresses(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        )
    except Refused as exc:
        raise UrlRefused(
            f"url: {exc}; webhooks may not reach loopback, link-local or private addresses "
            "(ROSTER_WEBHOOK_ALLOW_PRIVATE allows it)"
        ) from None
    return url


def subscribed(endpoint: Any) -> list[sa.ColumnElement[bool]]:
    """Conditions selecting the events an endpoint receives (its cursor says how far it got)."""
    where = [events.c.organization_id == endpoint["organization_id"]]
    if endpoint["events"]:
        where.append(events.c.event.in_(list(endpoint["events"])))
    return where


def backlog(conn: sa.Connection, endpoint: Any) -> int:
    """How many events the endpoint still has to receive."""
    return feed.count(conn, subscribed(endpoint), endpoint["cursor"] or None)


def signature(secret: str, body: bytes, at_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{at_ms}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at_ms}, v1={digest}"


def event_body(row: Any) -> bytes:
    """Exactly the object ``GET /events`` returns for this event."""
    payload = {
        "object": "event",
        "id": row["id"],
        "event": row["event"],
        "data": json.loads(row["data"]),
        "created_at": iso(row["created_at"]),
        "context": {},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def backoff(attempt: int, rng: random.Random) -> float:
    base = min(5.0 * 2 ** (attempt - 1), 3600.0)
    return float(base * rng.uniform(0.8, 1.2))


class Deliverer:
    def __init__(self, rt: Runtime, client: httpx.Client | None = None) -> None:
        self.rt = rt
        self.box: SecretBox = rt.box
        # The client connects only to the addresses it checked (no second lookup to rebind).
        self.client = client or pinned_client(
            webhook_reach(rt.settings.webhook_allow_private), rt.settings.webhook_timeout_seconds
        )
        self.rng = random.Random()
        self._stop = threading.Event()
        # An endpoint's lease outlives one attempt and is renewed after each; a dead deliverer's
        # endpoints pass to another one soon after.
        self.lease = timedelta(seconds=rt.settings.webhook_timeout_seconds + 5)
        self._held: dict[str, datetime] = {}  # endpoint id -> the lease value this deliverer set
        self._secrets: dict[str, str] = {}  # sealed -> plain, for this deliverer's life
        self._bodies: dict[str, bytes] = {}  # event id -> body: one event goes to many endpoints
        # endpoint id -> (cursor, updated_at, newest event id) when it last had nothing to receive: it is
        # not claimed again until one of them changes (an idle fleet's endpoints cost no writes)
        self._idle: dict[str, tuple[Any, Any, Any]] = {}

    def run_once(self) -> int:
        """Deliver what is due to every endpoint; returns how many events were delivered."""
        now = utcnow()
        e = webhook_endpoints
        with self.rt.engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
            rows = conn.execute(
                sa.select(e.c.id, e.c.cursor, e.c.updated_at).where(
                    e.c.enabled.is_(True),
                    sa.or_(e.c.next_attempt_at.is_(None), e.c.next_attempt_at <= now),
                    sa.or_(e.c.lease_until.is_(None), e.c.lease_until < now),
                )
            ).all()
        due = [r.id for r in rows if self._idle.get(r.id) != (r.cursor, r.updated_at, newest)]
        if not due:
            return 0
        workers = max(1, min(self.rt.settings.webhook_workers, len(due)))
        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(lambda endpoint_id: self.endpoint(endpoint_id, newest), due))

    def run_forever(self, idle: float = 0.1) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once() == 0:
                    self._stop.wait(idle)
            except Exception:
                log.exception("webhook delivery round failed")
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()

    def _claim(self, endpoint_id: str) -> bool:
        now = utcnow()
        e = webhook_endpoints
        until = now + self.lease
        with self.rt.engine.begin() as conn:
            done = conn.execute(
                sa.update(e)
                .where(e.c.id == endpoint_id, sa.or_(e.c.lease_until.is_(None), e.c.lease_until < now))
                .values(lease_until=until)
            )
        if done.rowcount == 1:
            self._held[endpoint_id] = until  # the exact value is this deliverer's proof of ownership
        return done.rowcount == 1

    def _renew(self, conn: sa.Connection, endpoint_id: str, **values: Any) -> bool:
        """Move this deliverer's lease forward (and write ``values``) only if it still holds it."""
        e = webhook_endpoints
        until = utcnow() + self.lease
        done = conn.execute(
            sa.update(e)
            .where(e.c.id == endpoint_id, e.c.lease_until == self._held.get(endpoint_id))
            .values(lease_until=until, **values)
        )
        if done.rowcount == 1:
            self._held[endpoint_id] = until
        return done.rowcount == 1

    def endpoint(self, endpoint_id: str, newest: str | None = None) -> int:
        """Deliver the endpoint's backlog in order, a batch at a time, while it keeps answering 2xx
        (``newest``: the newest event id when the round began, remembered if it had nothing)."""
        if not self._claim(endpoint_id):
            return 0
        delivered = 0
        try:
            for _ in range(ROUNDS):
                count, more = self._deliver_batch(endpoint_id, newest)
                delivered += count
                if not more:
                    break
        finally:
            with self.rt.engine.begin() as conn:
                conn.execute(
                    sa.update(webhook_endpoints)
                    .where(
                        webhook_endpoints.c.id == endpoint_id,
                        webhook_endpoints.c.lease_until == self._held.pop(endpoint_id, None),
                    )
                    .values(lease_until=None)
                )
        return delivered

    def _next_events(self, conn: sa.Connection, endpoint: Any) -> list[Any]:
        return feed.read(conn, subscribed(endpoint), limit=BATCH, after=endpoint["cursor"] or None).events

    def post(self, endpoint: Any, event: Any) -> tuple[int | None, str | None, float, float | None]:
        """One POST: (status, error, latency ms, retry-after seconds)."""
        body = event_body(event)
        at_ms = int(time.time() * 1000)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event["id"],
            "WorkOS-Signature": signature(self.box.open(endpoint["secret"]), body, at_ms),
            "User-Agent": "Roster-Webhooks/1",
        }
        previous_until = as_utc(endpoint["previous_until"])
        if endpoint["previous_secret"] and previous_until and previous_until > utcnow():
            headers["WorkOS-Signature-Previous"] = signature(
                self.box.open(endpoint["previous_secret"]), body, at_ms
            )
        started = time.perf_counter()
        try:
            response = self.client.post(endpoint["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}", (time.perf_counter() - started) * 1000, None
        latency = (time.perf_counter() - started) * 1000
        retry_after = None
        if response.status_code == 429:
            try:
                retry_after = float(response.headers.get("retry-after", ""))
            except ValueError:
                retry_after = None
        error = None if response.is_success else f"HTTP {response.status_code}"
        return response.status_code, error, latency, retry_after

    def _deliver_batch(self, endpoint_id: str, newest: str | None = None) -> tuple[int, bool]:
        """POST the next events in order until one fails; record it all in one transaction.

        Returns (delivered, more to do now). A crash before the commit repeats the batch:
        at least once, never out of order.
        """
        with self.rt.engine.connect() as conn:
            endpoint = (
                conn.execute(sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
                .mappings()
                .first()
            )
            if endpoint is None or not endpoint["enabled"]:
                return 0, False
            batch = self._next_events(conn, endpoint)
        if not batch:
            if newest is not None:
                self._idle[endpoint_id] = (endpoint["cursor"], endpoint["updated_at"], newest)
            return 0, False
        state = dict(endpoint)
        log: list[Attempt] = []
        delivered, more, alert = 0, len(batch) == BATCH, None
        for event in batch:
            held = self._held.get(endpoint_id)
            if held is not None and held - utcnow() < self.lease * 2 / 3:
                with self.rt.engine.begin() as conn:
                    if not self._renew(conn, endpoint_id):
                        return 0, False  # another deliverer took over: leave the cursor to it
            attempt, go_on, raised = self._advance(state, event["id"], self.post(state, event))
            log.append(attempt)
            alert = raised or alert  # the last turn to failing in the batch, as it always was
            delivered += attempt[2] == "delivered"
            if not go_on:
                more = False
                break
        if not self._record(dict(endpoint), state, log, alert):
            return 0, False  # lost the lease mid-batch: the new holder redelivers from the cursor
        return delivered, more

    def _advance(
        self, state: dict[str, Any], event_id: str, result: tuple[int | None, str | None, float, float | None]
    ) -> tuple[Attempt, bool, str | None]:
        """One POST's effect on the endpoint's ``state`` (updated in place): its log entry, whether
        to go on with the next event, and the alert it raises (the endpoint turned failing)."""
        status, error, latency, retry_after = result
        settings, now = self.rt.settings, utcnow()
        attempt = state["head_attempts"] + 1
        if status is not None and 200 <= status < 300:
            state.update(
                cursor=event_id,
                head_since=None,
                head_attempts=0,
                next_attempt_at=None,
                consecutive_failures=0,
                failing=False,
            )
            return (event_id, attempt, "delivered", status, latency, None), True, None
        since = as_utc(state["head_since"]) or now
        permanent = status is not None and 400 <= status < 500 and status not in RETRYABLE
        expired = now - since >= timedelta(hours=settings.webhook_retry_hours)
        alert = None
        state["consecutive_failures"] += 1
        if state["consecutive_failures"] >= settings.webhook_failing_after and not state["failing"]:
            state["failing"] = True
            alert = error or "delivery failed"
        if permanent or expired:
            state.update(cursor=event_id, head_since=None, head_attempts=0, next_attempt_at=None)
            return (event_id, attempt, "failed", status, latency, error), True, alert
        wait = min(max(retry_after, 1.0), 3600.0) if retry_after is not None else backoff(attempt, self.rng)
        state.update(head_since=since, head_attempts=attempt, next_attempt_at=now + timedelta(seconds=wait))
        return (event_id, attempt, "retry", status, latency, error), False, alert

    def _record(
        self, endpoint: dict[str, Any], state: dict[str, Any], log: list[Attempt], alert: str | None
    ) -> bool:
        """The batch's state, attempts and alert in one transaction; False if the lease was lost."""
        endpoint_id = endpoint["id"]
        now = utcnow()
        keys = ("cursor", "head_since", "head_attempts", "next_attempt_at", "consecutive_failures", "failing")
        with self.rt.engine.begin() as conn:
            if not self._renew(conn, endpoint_id, **{k: state[k] for k in keys}, updated_at=now):
                return False
            conn.execute(
                sa.insert(webhook_deliveries),
                [
                    {
                        "id": did,
                        "endpoint_id": endpoint_id,
                        "event_id": eid,
                        "attempt": n,
                        "outcome": outcome,
                        "status_code": status,
                        "latency_ms": int(latency),
                        "error": error,
                        "manual": False,
                        "created_at": now,
                    }
                    for did, (eid, n, outcome, status, latency, error) in zip(
                        new_ids("delivery", len(log)), log, strict=True
                    )
                ],
            )
            if alert is not None:
                _alert_failing(conn, endpoint, alert)
        return True


def record(
    conn: sa.Connection,
    endpoint_id: str,
    event_id: str,
    attempt: int,
    outcome: str,
    status: int | None,
    latency: float,
    error: str | None,
    manual: bool,
) -> None:
    conn.execute(
        sa.insert(webhook_deliveries).values(
            id=new_id("delivery"),
            endpoint_id=endpoint_id,
            event_id=event_id,
            attempt=attempt,
            outcome=outcome,
            status_code=status,
            latency_ms=int(latency),
            error=error,
            manual=manual,
            created_at=utcnow(),
        )
    )


def _alert_failing(conn: sa.Connection, endpoint: dict[str, Any], error: str) -> None:
    from roster.accounts.lifecycle import recipients
    from roster.notify.mail import queue

    org = endpoint["organization_id"]
    queue(
        conn,
        org,
        [r["email"] for r in recipients(conn, org)],
        f"Webhook endpoint {endpoint['url']} is failing",
        f"Roster cannot deliver events to {endpoint['url']} ({endpoint['id']}): {error}\n"
        "Deliveries are retried; this is the only e-mail until it works again.\n",
        "webhook_failing",
    )


def prune_events(rt: Runtime, now: datetime | None = None) -> int:
    """Delete events older than the retention period (and the delivery log that names them)."""
    cutoff = (now or utcnow()) - timedelta(days=rt.settings.events_retention_days)
    with rt.engine.begin() as conn:
        old = sa.select(events.c.id).where(events.c.created_at < cutoff)
        conn.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.event_id.in_(old)))
        pruned = int(conn.execute(sa.delete(events).where(events.c.created_at < cutoff)).rowcount or 0)
        prune_objects(conn, cutoff)
        return pruned
