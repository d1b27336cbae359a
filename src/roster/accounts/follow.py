"""Make the application's accounts and groups follow one directory, inside the sync transaction.

Reads the directory cache and the application tables, asks the pure planners in
``roster.domain.linking`` what to do, and writes it in bulk, with a sync-log entry
for every account and group it touches. The members of a group that comes from a directory are
not copied: they are the directory's memberships, read through the linked accounts
(``roster.accounts.service.membership_edges``), so each membership is written once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.accounts.lifecycle import relinked
from roster.domain.linking import (
    AccountView,
    AppGroupView,
    DirGroupView,
    DirUserView,
    plan_accounts,
    plan_groups,
)
from roster.ids import new_ids
from roster.store.bulk import insert_many
from roster.store.rows import CHUNK, one_of
from roster.store.schema import (
    accounts,
    app_group_members,
    app_groups,
    directories,
    directory_groups,
    directory_users,
    grants,
    organizations,
    sync_log,
)
from roster.store.writer import Touched


class _Log:
    def __init__(self, conn: Connection, run_id: str, directory_id: str, now: datetime) -> None:
        self.conn, self.run_id, self.directory_id, self.now = conn, run_id, directory_id, now
        self.rows: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}

    def add(self, change: str, object_type: str, object_id: str | None, detail: dict[str, Any]) -> None:
        self.counts[change] = self.counts.get(change, 0) + 1
        self.rows.append(
            {
                "change": change,
                "object_type": object_type,
                "object_id": object_id,
                "external_id": None,
                "detail": json.dumps(detail, separators=(",", ":")),
            }
        )

    def flush(self) -> None:
        if self.rows:
            for log_id, row in zip(new_ids("log", len(self.rows)), self.rows, strict=True):
                row.update(id=log_id, run_id=self.run_id, directory_id=self.directory_id, created_at=self.now)
            insert_many(self.conn, sync_log, self.rows)
            self.rows = []


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def follow_directory(
    conn: Connection,
    organization_id: str,
    directory_id: str,
    run_id: str,
    now: datetime,
    touched: Touched | None = None,
) -> dict[str, int]:
    """Make accounts and groups follow the directory: all of them, or (``touched``) only what a
    run changed, which gives the same result when the accounts did not change meanwhile."""
    log = _Log(conn, run_id, directory_id, now)
    freed = _follow_accounts(conn, organization_id, directory_id, now, log, touched)
    for _ in range(5):  # e-mails an account gave up: the users refused them get another look
        if not freed:
            break
        u = directory_users
        waiting = _in_chunks(
            conn, sa.select(u.c.id).where(u.c.directory_id == directory_id), u.c.email_lower, freed
        )
        freed = _follow_accounts(
            conn, organization_id, directory_id, now, log, Touched(users=frozenset(r.id for r in waiting))
        )
    _follow_groups(conn, organization_id, directory_id, now, log, touched)
    log.flush()
    return log.counts


def _in_chunks(conn: Connection, query: Any, column: Any, ids: Iterable[str]) -> list[Any]:
    """Rows of ``query`` whose ``column`` is one of ``ids`` (see ``one_of``)."""
    rows: list[Any] = []
    for condition in one_of(conn, column, ids):
        rows.extend(conn.execute(query.where(condition)).all())
    return rows


def _follow_accounts(
    conn: Connection, org: str, directory_id: str, now: datetime, log: _Log, touched: Touched | None
) -> set[str]:
    """Returns the e-mails (lower-case) that accounts gave up for new ones."""
    users, current = _account_views(conn, org, directory_id, touched)
    plan = plan_accounts(users, current)
    if plan.links:
        _link(conn, org, directory_id, plan.links, now, log)
    if plan.provisions:
        _provision(conn, org, directory_id, plan.provisions, now, log)
    a = accounts
    for aid, changes in plan.updates:
        conn.execute(sa.update(a).where(a.c.id == aid).values(**changes, updated_at=now))
        kind = "account_updated"
        if changes.get("disabled") is True:
            kind = "account_disabled"
        elif changes.get("disabled") is False:
            kind = "account_enabled"
        log.add(kind, "account", aid, {k: v for k, v in changes.items() if k != "email_lower"})
    for uid, reason in plan.skipped:
        log.add("account_skipped", "directory_user", uid, {"reason": reason})
    before = {view.id: view.email.lower() for view in current}
    return {before[aid] for aid, changes in plan.updates if "email_lower" in changes}


def _account_views(
    conn: Connection, org: str, directory_id: str, touched: Touched | None
) -> tuple[list[DirUserView], list[AccountView]]:
    """The directory's users with an e-mail and the organization's accounts they concern (all of
    them, or only the touched users and every account they could link to or collide with)."""
    u, a = directory_users, accounts
    user_q = sa.select(u.c.id, u.c.email, u.c.name, u.c.phone, u.c.state, u.c.present).where(
        u.c.directory_id == directory_id, u.c.email.is_not(None)
    )
    account_q = sa.select(
        a.c.id,
        a.c.email,
        a.c.name,
        a.c.phone,
        a.c.directory_user_id,
        a.c.disabled,
        a.c.disabled_reason,
    ).where(a.c.organization_id == org)
    if touched is None:
        user_rows = conn.execute(user_q).all()
        account_rows = conn.execute(account_q).all()
    else:  # looked up by their unique ids alone, so that the database uses those indexes
        by_user = sa.select(*user_q.selected_columns).where(u.c.email.is_not(None))
        user_rows = _in_chunks(conn, by_user, u.c.id, touched.users)
        by_link = sa.select(*account_q.selected_columns)
        by_id = {r.id: r for r in _in_chunks(conn, by_link, a.c.directory_user_id, touched.users)}
        emails = [r.email.lower() for r in user_rows]
        by_id.update((r.id, r) for r in _in_chunks(conn, account_q, a.c.email_lower, emails))
        account_rows = list(by_id.values())
    users = [
        DirUserView(r.id, r.email, r.name, r.phone, r.state == "active" and bool(r.present))
        for r in user_rows
    ]
    current = [
        AccountView(r.id, r.email, r.name, r.phone, r.directory_user_id, bool(r.disabled), r.disabled_reason)
        for r in account_rows
    ]
    return users, current


def _link(
    conn: Connection,
    org: str,
    directory_id: str,
    links: Sequence[tuple[str, str]],
    now: datetime,
    log: _Log,
) -> None:
    """Existing accounts (matched by e-mail) now follow their directory users."""
    a = accounts
    conn.execute(
        sa.update(a).where(a.c.id == sa.bindparam("b_id")),
        [
            {
                "b_id": aid,
                "directory_id": directory_id,
                "directory_user_id": uid,
                "password_hash": None,
                "updated_at": now,
            }
            for aid, uid in links
        ],
    )
    for aid, uid in links:
        log.add("account_linked", "account", aid, {"directory_user_id": uid})
    directory = conn.execute(sa.select(directories).where(directories.c.id == directory_id)).mappings().one()
    relinked(conn, org, [aid for aid, _ in links], dict(directory))


def _provision(
    conn: Connection,
    org: str,
    directory_id: str,
    provisions: Sequence[DirUserView],
    now: datetime,
    log: _Log,
) -> None:
    """New accounts for directory users that had none."""
    rows: list[dict[str, Any]] = [
        {
            "id": aid,
            "organization_id": org,
            "email": user.email,
            "email_lower": user.email.lower(),
            "name": user.name,
            "phone": user.phone,
            "role": "member",
            "disabled": not user.active,
            "disabled_reason": None if user.active else "directory",
            "password_hash": None,
            "directory_id": directory_id,
            "directory_user_id": user.id,
            "provisioned": True,
            "data": "{}",  # JSON text: written through the driver
            "created_at": now,
            "updated_at": now,
        }
        for aid, user in zip(new_ids("account", len(provisions)), provisions, strict=True)
    ]
    insert_many(conn, accounts, rows)
    for row in rows:
        log.add("account_provisioned", "account", str(row["id"]), {"email": row["email"]})


def _follow_groups(
    conn: Connection,
    org: str,
    directory_id: str,
    now: datetime,
    log: _Log,
    touched: Touched | None,
) -> None:
    g, ag, m = directory_groups, app_groups, app_group_members
    policy = conn.execute(
        sa.select(organizations.c.group_removal_policy).where(organizations.c.id == org)
    ).scalar()
    group_q = sa.select(g.c.id, g.c.idp_id, g.c.name, g.c.description).where(g.c.directory_id == directory_id)
    app_q = sa.select(
        ag.c.id,
        ag.c.directory_group_id,
        ag.c.directory_idp_id,
        ag.c.name,
        ag.c.description,
        ag.c.state,
    ).where(ag.c.directory_id == directory_id, ag.c.source == "directory")
    if touched is None:
        group_rows = conn.execute(group_q).all()
        app_rows = conn.execute(app_q).all()
    else:  # the touched groups and their application groups (a group kept inactive may come back)
        group_rows = _in_chunks(conn, sa.select(*group_q.selected_columns), g.c.id, touched.groups)
        by_id = {r.id: r for r in _in_chunks(conn, app_q, ag.c.directory_group_id, touched.groups)}
        idps = [r.idp_id for r in group_rows]
        by_id.update((r.id, r) for r in _in_chunks(conn, app_q, ag.c.directory_idp_id, idps))
        app_rows = list(by_id.values())
    dir_groups = [DirGroupView(r.id, r.idp_id, r.name, r.description) for r in group_rows]
    apps = [
        AppGroupView(r.id, r.directory_group_id, r.directory_idp_id, r.name, r.description, r.state)
        for r in app_rows
    ]
    plan = plan_groups(dir_groups, apps, policy or "remove")
    if plan.creates:
        new_rows: list[dict[str, Any]] = [
            {
                "id": gid,
                "organization_id": org,
                "name": grp.name,
                "description": grp.description,
                "source": "directory",
                "state": "active",
                "directory_id": directory_id,
                "directory_group_id": grp.id,
                "directory_idp_id": grp.idp_id,
                "created_at": now,
                "updated_at": now,
            }
            for gid, grp in zip(new_ids("group", len(plan.creates)), plan.creates, strict=True)
        ]
        insert_many(conn, ag, new_rows)
        for row in new_rows:
            log.add("app_group_created", "app_group", str(row["id"]), {"name": row["name"]})
    for gid, changes in plan.updates:
        conn.execute(sa.update(ag).where(ag.c.id == gid).values(**changes, updated_at=now))
        log.add("app_group_updated", "app_group", gid, dict(changes))
    for chunk in _chunks(list(plan.removes)):
        conn.execute(sa.delete(grants).where(grants.c.principal_id.in_(chunk)))
        conn.execute(sa.delete(m).where(sa.or_(m.c.group_id.in_(chunk), m.c.member_id.in_(chunk))))
        conn.execute(sa.delete(ag).where(ag.c.id.in_(chunk)))
    for gid in plan.removes:
        log.add("app_group_removed", "app_group", gid, {"policy": "remove"})
    for chunk in _chunks(list(plan.deactivates)):
        conn.execute(sa.delete(m).where(m.c.group_id.in_(chunk)))
        conn.execute(
            sa.update(ag)
            .where(ag.c.id.in_(chunk))
            .values(state="inactive", directory_group_id=None, updated_at=now)
        )
    for gid in plan.deactivates:
        log.add("app_group_deactivated", "app_group", gid, {"policy": "keep_inactive"})
