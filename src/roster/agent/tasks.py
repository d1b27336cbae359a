"""The work an agent does, leased through the store so that any API replica can hand it out and
any healthy agent of the directory can take it. A sync task's result is an upload: the batch in
its wire form, gzip-compressed, sent in chunks that can resume after a dropped connection."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.ids import new_id
from roster.store.db import utcnow
from roster.store.schema_access import agent_tasks, agent_uploads

LEASE = timedelta(seconds=120)  # renewed by every chunk; a silent agent's sync goes to another
REPEATABLE = ("full", "incremental", "test")  # safe to give to another agent


class TaskGone(Exception):
    """The task is not (or no longer) this agent's."""


def enqueue(
    conn: Connection, directory_id: str, kind: str, payload: dict[str, Any], agent_id: str | None = None
) -> str:
    """A task for any agent of the directory, or (``agent_id``) for that one only."""
    task_id = new_id("agent_task")
    conn.execute(
        sa.insert(agent_tasks).values(
            id=task_id,
            directory_id=directory_id,
            kind=kind,
            status="queued",
            agent_id=agent_id,
            payload=json.dumps(payload, separators=(",", ":")),
            created_at=utcnow(),
        )
    )
    return task_id


def claim(conn: Connection, agent: dict[str, Any], lease: timedelta = LEASE) -> dict[str, Any] | None:
    """The oldest task of the agent's directory that is queued, or leased by an agent that went
    silent (when it is safe to repeat); leased to this agent."""
    t, now = agent_tasks, utcnow()
    lost = sa.and_(t.c.status == "leased", t.c.lease_until < now, t.c.kind.in_(REPEATABLE))
    mine = sa.or_(t.c.agent_id.is_(None), t.c.agent_id == agent["id"], t.c.status == "leased")
    candidate = conn.execute(
        sa.select(t.c.id)
        .where(t.c.directory_id == agent["directory_id"], sa.or_(t.c.status == "queued", lost), mine)
        .order_by(t.c.id)
        .limit(1)
    ).scalar()
    if candidate is None:
        return None
    won = conn.execute(
        sa.update(t)
        .where(t.c.id == candidate, sa.or_(t.c.status == "queued", lost))
        .values(status="leased", agent_id=agent["id"], lease_until=now + lease)
    ).rowcount
    if not won:
        return None  # another agent took it first
    conn.execute(sa.delete(agent_uploads).where(agent_uploads.c.task_id == candidate))  # a restart
    row = conn.execute(sa.select(t).where(t.c.id == candidate)).mappings().one()
    payload = json.loads(row["payload"])
    return {"id": row["id"], "kind": row["kind"], "payload": payload, "lease_seconds": lease.total_seconds()}


def _leased(conn: Connection, task_id: str, agent_id: str, lease: timedelta = LEASE) -> None:
    t = agent_tasks
    held = conn.execute(
        sa.update(t)
        .where(t.c.id == task_id, t.c.agent_id == agent_id, t.c.status == "leased")
        .values(lease_until=utcnow() + lease)
    ).rowcount
    if not held:
        raise TaskGone(f"task {task_id} is not leased to this agent")


def uploaded(conn: Connection, task_id: str) -> int:
    """How many bytes of the upload the server holds (where the agent resumes)."""
    u = agent_uploads
    total = conn.execute(
        sa.select(sa.func.sum(sa.func.length(u.c.data))).where(u.c.task_id == task_id)
    ).scalar()
    return int(total or 0)


def append(
    conn: Connection, task_id: str, agent_id: str, offset: int, data: bytes, lease: timedelta = LEASE
) -> int:
    """Store a chunk at ``offset`` (which must be where the upload stands); the new size."""
    _leased(conn, task_id, agent_id, lease)
    size = uploaded(conn, task_id)
    if offset != size:
        return size  # the agent resumes from here
    conn.execute(sa.insert(agent_uploads).values(task_id=task_id, offset=offset, data=data))
    return size + len(data)


def finish(conn: Connection, task_id: str, agent_id: str, status: str, result: dict[str, Any] | None) -> None:
    """``uploaded`` (a sync's batch is complete), ``done`` (a test's report) or ``failed``."""
    _leased(conn, task_id, agent_id)
    values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    values["result"] = json.dumps(result) if result is not None else None
    conn.execute(sa.update(agent_tasks).where(agent_tasks.c.id == task_id).values(**values))
    scrub(conn, task_id)


def scrub(conn: Connection, task_id: str) -> None:
    """A login's sealed password is dropped as soon as the login is answered or given up."""
    t = agent_tasks
    conn.execute(sa.update(t).where(t.c.id == task_id, t.c.kind == "login").values(payload="{}"))


def renew(conn: Connection, task_id: str, agent_id: str, lease: timedelta = LEASE) -> None:
    """The agent is still working on it (a long read uploads nothing for a while)."""
    _leased(conn, task_id, agent_id, lease)


def state(conn: Connection, task_id: str) -> tuple[str, dict[str, Any] | None]:
    row = conn.execute(
        sa.select(agent_tasks.c.status, agent_tasks.c.result).where(agent_tasks.c.id == task_id)
    ).one()
    return row.status, (json.loads(row.result) if row.result else None)


def take_upload(conn: Connection, task_id: str) -> bytes:
    """The whole upload, which is then dropped (the task is done)."""
    u = agent_uploads
    data = b"".join(
        r.data for r in conn.execute(sa.select(u.c.data).where(u.c.task_id == task_id).order_by(u.c.offset))
    )
    conn.execute(sa.delete(u).where(u.c.task_id == task_id))
    conn.execute(sa.update(agent_tasks).where(agent_tasks.c.id == task_id).values(status="done"))
    return data


def abandon(conn: Connection, task_id: str, reason: str) -> None:
    """The server stopped waiting: the task fails, and its upload is dropped."""
    conn.execute(sa.delete(agent_uploads).where(agent_uploads.c.task_id == task_id))
    conn.execute(
        sa.update(agent_tasks)
        .where(agent_tasks.c.id == task_id, agent_tasks.c.status.in_(["queued", "leased", "uploaded"]))
        .values(status="failed", result=json.dumps({"error": reason}), finished_at=utcnow())
    )
    scrub(conn, task_id)
