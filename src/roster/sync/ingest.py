"""ingest(conn, directory_id, batch, policy) -> Outcome: the one write path of every source.

A batch is a whole snapshot (every user, group and membership) or a delta (changes since a
cursor, as whole records, membership operations by id, or both). Every source ends here: a
scheduled or manual LDAP pull, an agent's upload, a SCIM request, a Graph delta. In the
caller's transaction, in this order:

    reconcile (pure) -> deletion guard / approval -> apply (cache, sync log, events)
    -> the account and group pass -> the run record

A failure raises and the caller's rollback leaves the store as it was; a run the guard
holds, and a dry run, apply nothing and log what they would do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.accounts.follow import follow_directory
from roster.accounts.lifecycle import directory_enabled
from roster.domain.changes import ChangeSet
from roster.domain.delta import Delta, reconcile_delta, with_present
from roster.domain.policy import DeletionGuard
from roster.domain.reconcile import reconcile, snapshot_digests
from roster.domain.records import CachedState, Snapshot
from roster.events.payloads import directory_payload
from roster.store import repo
from roster.store.apply import apply_changes
from roster.store.db import as_utc, utcnow
from roster.store.rows import load_cached_state, load_cached_subset, load_known_ids, load_ref_subset
from roster.store.schema import accounts, directories, sync_runs
from roster.store.writer import Target, Touched, log_plan
from roster.sync.approvals import hold_for_approval

Batch = Snapshot | Delta

_ANY = "\x00any"  # Policy.continues_from: no check


@dataclass(frozen=True)
class Policy:
    """How a batch may be applied.

    ``guard``: the deletion guard of this source (None: none, as for one SCIM request).
    ``continues_from``: for a delta read from a cursor, that cursor; if the directory's cursor
    moved meanwhile (another run applied), this batch is superseded and applies nothing.
    ``lease_owner``: the worker that must still hold the directory's lease.
    """

    guard: DeletionGuard | None = field(default_factory=DeletionGuard)
    dry_run: bool = False
    force: bool = False
    approved_digest: str | None = None
    lease_owner: str | None = None
    continues_from: str | None = _ANY


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # succeeded | failed | pending_approval | cancelled | superseded
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    error_reason: str | None = None
    changes: ChangeSet | None = None
    kind: str = "full"  # full | incremental | dry_run
    ids: Mapping[str, str] = field(default_factory=dict)  # source id -> Roster id of the batch's records

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def ingest(
    conn: Connection,
    directory_id: str,
    batch: Batch,
    policy: Policy | None = None,
    *,
    run_id: str | None = None,
    trigger: str = "manual",
    extra_counts: Mapping[str, int] | None = None,
    locked: Mapping[str, Any] | None = None,
) -> Outcome:
    """Apply ``batch`` to the directory in the caller's transaction. ``run_id``: the run record the
    caller started (a pull records its run before reading); otherwise one is started here.
    ``locked``: the directory's row, when the caller took its lock in this transaction already
    (``repo.lock_directory``), to read what the batch changes before building it."""
    policy = policy or Policy()
    kind = "dry_run" if policy.dry_run else ("incremental" if isinstance(batch, Delta) else "full")
    directory = dict(locked) if locked is not None else repo.lock_directory(conn, directory_id)
    if run_id is None:
        run_id = repo.start_run(conn, directory, trigger, kind)["id"]
    refused = _refusal(directory, batch, policy)
    if refused is not None:
        status, reason, message = refused
        repo.finish_run(conn, run_id, status, {}, message, reason)
        return Outcome(run_id, status, {}, message, reason, kind=kind)
    cached, changes = plan(conn, directory_id, batch)
    counts = {str(k): v for k, v in changes.counts().items()}
    counts["deactivated"] = changes.deactivations
    counts.update(extra_counts or {})
    target = Target(directory_id, directory["organization_id"], run_id)
    now = utcnow()
    blocked = _guard(policy, changes, cached)
    if blocked is not None or policy.dry_run:
        return _log_only(conn, directory, target, changes, counts, blocked, kind, policy.dry_run, now)
    touched = _apply(conn, directory, target, batch, changes, cached, now)
    counts.update(_follow(conn, directory, run_id, changes, touched, isinstance(batch, Delta), now))
    if directory["state"] == "linking":
        directory_enabled(conn, directory["organization_id"], repo.get_directory(conn, directory_id))
    repo.finish_run(conn, run_id, "succeeded", counts, kind=kind)
    return Outcome(run_id, "succeeded", counts, changes=changes, kind=kind, ids=_ids(batch, touched))


def _refusal(directory: Mapping[str, Any], batch: Batch, policy: Policy) -> tuple[str, str, str] | None:
    """(status, reason, message) when this batch must not apply at all."""
    if policy.lease_owner is not None and directory["lease_owner"] != policy.lease_owner:
        return (
            "cancelled",
            "lease_lost",
            "this worker lost the directory's lease while reading; nothing was applied",
        )
    if directory["state"] == "inactive":
        message = "the directory was disabled while this run was reading; nothing was applied"
        return "cancelled", "directory_disabled", message
    if (
        isinstance(batch, Delta)
        and policy.continues_from != _ANY
        and directory["cursor"] != policy.continues_from
    ):
        return (
            "superseded",
            "superseded",
            "another run advanced this directory meanwhile; this one applied nothing",
        )
    return None


def plan(conn: Connection, directory_id: str, batch: Batch) -> tuple[CachedState, ChangeSet]:
    """The cache this batch is compared with, and what it changes. Reads only."""
    if isinstance(batch, Snapshot):  # memberships only of the groups whose member digest changed
        digests = snapshot_digests(batch)
        cached = load_cached_state(conn, directory_id, digests)
        return cached, reconcile(batch, cached, digests)
    delta = batch
    if delta.present is not None:
        delta = with_present(delta, load_known_ids(conn, directory_id))
    pairs = [(op.group, op.member) for op in delta.member_ops]
    cached = load_cached_subset(conn, directory_id, delta.named_ids, delta.listed, pairs)
    return cached, reconcile_delta(delta, cached, load_ref_subset(conn, directory_id, delta.named_refs()))


def _guard(policy: Policy, changes: ChangeSet, cached: CachedState) -> str | None:
    if policy.force or policy.guard is None:
        return None
    blocked = policy.guard.check(changes, cached)
    if (
        blocked is not None
        and policy.approved_digest is not None
        and policy.approved_digest == changes.digest()
    ):
        return None  # an admin approved exactly this change set
    return blocked


def _log_only(
    conn: Connection,
    directory: Mapping[str, Any],
    target: Target,
    changes: ChangeSet,
    counts: dict[str, int],
    blocked: str | None,
    kind: str,
    dry_run: bool,
    now: datetime,
) -> Outcome:
    """Log what the change set would do. A dry run never holds anything: it reports that a real
    run would be held. A real run the guard stops waits for an admin's decision."""
    log_plan(conn, target, changes, now)
    if dry_run:
        if blocked is not None:
            counts["would_be_held"] = 1
        repo.finish_run(conn, target.run_id, "succeeded", counts, kind=kind)
        return Outcome(target.run_id, "succeeded", counts, blocked, None, changes, kind=kind)
    assert blocked is not None
    blocked += (
        f" (see what it would do: roster runs show {target.run_id} --changes; apply exactly that: "
        f"roster runs approve {target.run_id}; or drop it: roster runs reject {target.run_id})"
    )
    repo.finish_run(conn, target.run_id, "pending_approval", counts, blocked, "deletion_guard", kind=kind)
    hold_for_approval(conn, directory, target.run_id, changes, blocked)
    return Outcome(target.run_id, "pending_approval", counts, blocked, "deletion_guard", changes, kind=kind)


def _apply(
    conn: Connection,
    directory: Mapping[str, Any],
    target: Target,
    batch: Batch,
    changes: ChangeSet,
    cached: CachedState,
    now: datetime,
) -> Touched:
    values: dict[str, Any] = {"last_sync_at": now, "updated_at": now}
    if batch.cursor is not None or isinstance(batch, Snapshot):
        values["cursor"] = batch.cursor
    if directory["state"] in ("linking", "invalid_credentials"):
        values["state"] = "linked"
    activation = _activated(conn, {**directory, **values}) if directory["state"] == "linking" else None
    touched = apply_changes(conn, target, changes, cached, now, activation=activation)
    conn.execute(sa.update(directories).where(directories.c.id == target.directory_id).values(**values))
    return touched


def _follow(
    conn: Connection,
    directory: Mapping[str, Any],
    run_id: str,
    changes: ChangeSet,
    touched: Touched,
    limited: bool,
    now: datetime,
) -> dict[str, int]:
    """The account and group pass: only what this batch changed (a delta), unless the accounts
    changed meanwhile or it is a whole snapshot (which also repairs what an earlier pass left)."""
    org = directory["organization_id"]
    seen = _accounts_changed_at(conn, org)  # the newest account change before the pass
    changed = _accounts_changed(conn, directory["id"], seen)
    followed: dict[str, int] = {}
    if changed or directory["state"] == "linking" or not changes.is_empty:
        scope = touched if limited and not changed else None
        followed = follow_directory(conn, org, directory["id"], run_id, now, scope)
        if any(followed.get(k) for k in _ACCOUNT_WRITES):  # its own writes are stamped ``now``
            seen = now if seen is None else max(seen, now)
    conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run_id).values(accounts_seen_at=seen))
    return followed


_ACCOUNT_WRITES = (
    "account_linked",
    "account_provisioned",
    "account_updated",
    "account_disabled",
    "account_enabled",
)


def _accounts_changed_at(conn: Connection, organization_id: str) -> datetime | None:
    newest = conn.execute(
        sa.select(sa.func.max(accounts.c.updated_at)).where(accounts.c.organization_id == organization_id)
    ).scalar()
    return as_utc(newest)


def _accounts_changed(conn: Connection, directory_id: str, newest: datetime | None) -> bool:
    """Whether the organization's accounts changed since the directory's last successful run. If
    not, an unchanged re-sync skips the account and group pass (it writes nothing at all), and a
    delta looks only at what it changed."""
    r = sync_runs
    last = conn.execute(
        sa.select(r.c.accounts_seen_at)
        .where(
            r.c.directory_id == directory_id,
            r.c.status == "succeeded",
            r.c.kind != "dry_run",
            r.c.accounts_seen_at.is_not(None),
        )
        .order_by(r.c.id.desc())
        .limit(1)
    ).scalar()
    seen = as_utc(last)
    if seen is None:
        return True
    return newest is not None and newest > seen


def _ids(batch: Batch, touched: Touched) -> dict[str, str]:
    out = {ext: touched.user_ids[ext] for ext in batch.users if ext in touched.user_ids}
    out.update((ext, touched.group_ids[ext]) for ext in batch.groups if ext in touched.group_ids)
    return out


def _activated(conn: Connection, directory: Mapping[str, Any]) -> str:
    """The ``dsync.activated`` payload: the directory as the event's older shape names it."""
    org = repo.get_organization(conn, directory["organization_id"])
    payload = directory_payload(directory)
    payload["state"] = "active"
    payload["domains"] = (
        [{"object": "organization_domain", "id": org["id"], "domain": org["domain"]}] if org["domain"] else []
    )
    return json.dumps(payload, separators=(",", ":"))
