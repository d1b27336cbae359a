"""One sync run: read the directory, reconcile against the cache, apply in one transaction.

A run that fails anywhere before the final commit changes nothing but its own
run record. A run the deletion guard stops is recorded as ``blocked``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from roster.accounts.follow import follow_directory
from roster.accounts.lifecycle import directory_enabled
from roster.connectors.base import Connector, ConnectorError, FailureReason, Progress
from roster.domain.changes import ChangeSet
from roster.domain.delta import Delta, reconcile_delta
from roster.domain.policy import DeletionGuard
from roster.domain.reconcile import StaleCache, reconcile, snapshot_digests
from roster.domain.records import Snapshot
from roster.events.payloads import directory_payload
from roster.store import repo
from roster.store.apply import apply_changes
from roster.store.db import as_utc, utcnow
from roster.store.rows import (
    load_cached_state,
    load_cached_subset,
    load_dn_subset,
    load_known_ids,
    load_source_hashes,
)
from roster.store.schema import accounts, directories, sync_runs
from roster.store.writer import Target, log_plan

log = logging.getLogger(__name__)


class DirectoryDisabled(RuntimeError):
    pass


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: str  # succeeded | failed | blocked
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_reason: str | None = None
    changes: ChangeSet | None = None
    kind: str = "full"  # full | incremental | dry_run

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class Phase:
    """Progress reporting: ``phase(name)`` at each step, ``read(n)`` while reading."""

    phase: Callable[[str], None] = lambda _name: None
    read: Progress = lambda _n: None


def run_sync(
    engine: Engine,
    directory_id: str,
    connector: Connector,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    force: bool = False,
    full: bool = False,
    guard: DeletionGuard | None = None,
    progress: Phase | None = None,
    full_every: timedelta | None = None,
    approved_digest: str | None = None,
    lease_owner: str | None = None,
) -> RunResult:
    """Sync one directory: incrementally when it has a cursor and the connector can, else in full.

    ``full_every``: a full run at least this often, whatever the cursor says (time-dependent
    state such as lockouts, and changes a detector cannot see, are caught there).
    """
    guard = guard or DeletionGuard()
    progress = progress or Phase()
    with engine.begin() as conn:
        directory = repo.get_directory(conn, directory_id)
        if directory["state"] == "inactive":
            raise DirectoryDisabled(f"directory {directory_id} is disabled; enable it before syncing")
        start_cursor: str | None = directory["cursor"]
        incremental = bool(start_cursor) and not full and hasattr(connector, "changes")
        if incremental and full_every is not None:
            last_full = repo.last_full_run(conn, directory_id)
            incremental = last_full is not None and utcnow() - last_full < full_every
        kind = "dry_run" if dry_run else ("incremental" if incremental else "full")
        run = repo.start_run(conn, directory, trigger, kind)
    run_id = run["id"]

    def fail(message: str, reason: str) -> RunResult:
        with engine.begin() as conn:
            repo.finish_run(conn, run_id, "failed", {}, message, reason)
            if reason == FailureReason.INVALID_CREDENTIALS:
                conn.execute(
                    sa.update(directories)
                    .where(directories.c.id == directory_id)
                    .values(state="invalid_credentials", updated_at=utcnow())
                )
        return RunResult(run_id, "failed", {}, message, reason, kind=kind)

    snapshot: Snapshot | None = None
    delta: Delta | None = None
    try:
        progress.phase("reading")
        if incremental:
            assert start_cursor is not None

            def known() -> frozenset[str]:
                with engine.connect() as conn:
                    return load_known_ids(conn, directory_id)

            delta = connector.changes(start_cursor, known, progress.read)  # type: ignore[attr-defined]
        if delta is None:
            with engine.connect() as conn:  # users whose entry is as last read need no decoding
                previous = load_source_hashes(conn, directory_id)
            snapshot = connector.snapshot(progress.read, previous)
    except ConnectorError as exc:
        return fail(str(exc), str(exc.reason))
    except Exception as exc:  # a bug must not leave a run "running" forever
        log.exception("sync run %s crashed while reading", run_id)
        return fail(f"internal error while reading: {exc!r}", "internal")

    try:
        progress.phase("reconciling")
        with engine.begin() as conn:
            # Take the directory's row first: runs of one directory apply one after the
            # other, each against the cache the previous one committed.
            conn.execute(
                sa.update(directories)
                .where(directories.c.id == directory_id)
                .values(updated_at=directories.c.updated_at)
            )
            directory = repo.get_directory(conn, directory_id)
            if lease_owner is not None and directory["lease_owner"] != lease_owner:
                message = "this worker lost the directory's lease while reading; nothing was applied"
                repo.finish_run(conn, run_id, "cancelled", {}, message, "lease_lost")
                return RunResult(run_id, "cancelled", {}, message, "lease_lost", kind=kind)
            if directory["state"] == "inactive":
                message = "the directory was disabled while this run was reading; nothing was applied"
                repo.finish_run(conn, run_id, "cancelled", {}, message, "directory_disabled")
                return RunResult(run_id, "cancelled", {}, message, "directory_disabled", kind=kind)
            if delta is not None and directory["cursor"] != start_cursor:
                message = "another run advanced this directory meanwhile; this one applied nothing"
                repo.finish_run(conn, run_id, "superseded", {}, message, "superseded")
                return RunResult(run_id, "superseded", {}, message, "superseded", kind=kind)
            if delta is not None:  # only the cache rows and DNs this delta touches
                cached = load_cached_subset(conn, directory_id, delta.touched)
                named = {dn for group in delta.groups.values() for dn in group.member_dns}
                named.update(dn for parents in delta.member_of.values() for dn in parents)
                changes = reconcile_delta(delta, cached, load_dn_subset(conn, directory_id, named))
                new_cursor: str | None = delta.cursor
            else:  # memberships only of the groups whose member digest changed
                assert snapshot is not None
                digests = snapshot_digests(snapshot)
                cached = load_cached_state(conn, directory_id, digests)
                changes = reconcile(snapshot, cached, digests)
                new_cursor = snapshot.cursor
            counts = {str(k): v for k, v in changes.counts().items()}
            if incremental and delta is None:
                counts["fell_back_to_full"] = 1
            now = utcnow()
            target = Target(directory_id, directory["organization_id"], run_id)
            blocked = None if force else guard.check(changes, cached)
            if blocked is not None and approved_digest is not None and approved_digest == changes.digest():
                blocked = None  # an admin approved exactly this change set
            if blocked is not None or dry_run:
                log_plan(conn, target, changes, now)  # what it would do, for the admin to read
                status, reason = ("pending_approval", "deletion_guard") if blocked else ("succeeded", None)
                repo.finish_run(conn, run_id, status, counts, blocked, reason)
                if blocked is not None and not dry_run:
                    hold_for_approval(conn, directory, run_id, changes, blocked)
                return RunResult(run_id, status, counts, blocked, reason, changes, kind=kind)
            progress.phase("applying")
            values: dict[str, Any] = {"last_sync_at": now, "updated_at": now, "cursor": new_cursor}
            if directory["state"] in ("linking", "inactive", "invalid_credentials"):
                values["state"] = "linked"
            activation = (
                _activated(conn, {**directory, **values}) if directory["state"] == "linking" else None
            )
            touched = apply_changes(conn, target, changes, cached, now, activation=activation)
            conn.execute(sa.update(directories).where(directories.c.id == directory_id).values(**values))
            progress.phase("accounts")
            # The newest account change before the pass: the pass handles everything up to it.
            seen = as_utc(_accounts_changed_at(conn, directory["organization_id"]))
            accounts_changed = _accounts_changed(conn, directory, seen)
            if accounts_changed or activation is not None or not changes.is_empty:
                # Only what this run changed, unless the accounts changed meanwhile (or it is a
                # full run: those also repair anything an earlier pass left behind).
                scope = touched if delta is not None and not accounts_changed else None
                followed = follow_directory(
                    conn, directory["organization_id"], directory_id, run_id, now, scope
                )
                counts.update(followed)
                if any(followed.get(k) for k in _ACCOUNT_WRITES):  # its own writes are stamped ``now``
                    seen = now if seen is None else max(seen, now)
            conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run_id).values(accounts_seen_at=seen))
            if activation is not None:
                directory_enabled(conn, directory["organization_id"], directory)
            repo.finish_run(conn, run_id, "succeeded", counts)
    except StaleCache as exc:  # another writer changed the cache while this run was reading
        return fail(f"{exc} (nothing was applied)", "cache_changed")
    except Exception as exc:
        log.exception("sync run %s crashed while applying", run_id)
        return fail(f"internal error while applying (nothing was applied): {exc!r}", "internal")
    if incremental and delta is None:
        kind = "full"
    return RunResult(run_id, "succeeded", counts, changes=changes, kind=kind)


def _accounts_changed_at(conn: sa.Connection, organization_id: str) -> Any:
    return conn.execute(
        sa.select(sa.func.max(accounts.c.updated_at)).where(accounts.c.organization_id == organization_id)
    ).scalar()


_ACCOUNT_WRITES = (
    "account_linked",
    "account_provisioned",
    "account_updated",
    "account_disabled",
    "account_enabled",
)


def _accounts_changed(conn: sa.Connection, directory: dict[str, Any], newest: datetime | None) -> bool:
    """Whether the organization's accounts changed since the directory's last successful run. If not,
    an unchanged re-sync skips the account and group pass (it writes nothing at all), and an
    incremental run looks only at what it changed."""
    r = sync_runs
    last = conn.execute(
        sa.select(r.c.accounts_seen_at)
        .where(
            r.c.directory_id == directory["id"],
            r.c.status == "succeeded",
            r.c.kind != "dry_run",
            r.c.accounts_seen_at.is_not(None),
        )
        .order_by(r.c.id.desc())
        .limit(1)
    ).scalar()
    if last is None:
        return True
    return newest is not None and newest > as_utc(last)  # type: ignore[operator]


def hold_for_approval(
    conn: sa.Connection, directory: dict[str, Any], run_id: str, changes: ChangeSet, reason: str
) -> None:
    """Keep the run's exact plan for an admin to approve or reject, and tell the alert recipients once."""
    from roster.accounts.lifecycle import recipients
    from roster.notify.mail import queue

    digest = changes.digest()
    already = conn.execute(
        sa.select(sync_runs.c.id).where(
            sync_runs.c.directory_id == directory["id"],
            sync_runs.c.status == "pending_approval",
            sync_runs.c.decision.is_(None),
            sync_runs.c.id != run_id,
        )
    ).first()
    conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run_id).values(plan_digest=digest))
    if already is not None:
        return  # an earlier held run already asked; one e-mail per outstanding approval
    org = directory["organization_id"]
    gone = ", ".join(u.external_id for u in changes.users_removed[:20])
    queue(
        conn,
        org,
        [r["email"] for r in recipients(conn, org)],
        f"Approval needed: a sync of {directory['name']} would deactivate {changes.deactivations} users",
        f"{reason}\n\nThe run {run_id} is held; nothing was applied. "
        f"Review its log (roster runs show {run_id}) and approve (roster runs approve {run_id}) "
        f"or reject it.\nFirst users it would deactivate: {gone}\n",
        "approval_needed",
    )


def _activated(conn: sa.Connection, directory: dict[str, Any]) -> str:
    """The ``dsync.activated`` payload: the directory as the event's older shape names it."""
    org = repo.get_organization(conn, directory["organization_id"])
    payload = directory_payload(directory)
    payload["state"] = "active"
    payload["domains"] = (
        [{"object": "organization_domain", "id": org["id"], "domain": org["domain"]}] if org["domain"] else []
    )
    return json.dumps(payload, separators=(",", ":"))
