"""Scheduled runs: a daily full sync at the organization's local time, and optional incremental runs.

``last_slot`` and ``next_slot`` are pure (the clock is passed in); ``Schedules.tick`` enqueues
the runs that are due, as jobs (coalesced with anything already queued).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from roster.runtime import Runtime
from roster.sources import pulled_types
from roster.store import jobs, repo
from roster.store.db import as_utc, utcnow
from roster.store.schema import directories, organizations, sync_runs

log = logging.getLogger(__name__)


def parse_time(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"daily_sync_time: {text!r} is not HH:MM (00:00 to 23:59)") from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: {name!r} is not a time zone name such as Europe/Prague") from None


def last_slot(now: datetime, tz: str, at: str) -> datetime:
    """The most recent daily slot at ``at`` (local time in ``tz``) not after ``now``, in UTC."""
    local = now.astimezone(zone(tz))
    slot = datetime.combine(local.date(), parse_time(at), tzinfo=local.tzinfo)
    if slot > local:
        slot = datetime.combine(local.date() - timedelta(days=1), parse_time(at), tzinfo=local.tzinfo)
    return slot.astimezone(now.tzinfo)


def next_slot(now: datetime, tz: str, at: str) -> datetime:
    previous = last_slot(now, tz, at)
    local = previous.astimezone(zone(tz))
    following = datetime.combine(local.date() + timedelta(days=1), parse_time(at), tzinfo=local.tzinfo)
    return following.astimezone(now.tzinfo)


class Schedules:
    def __init__(self, rt: Runtime, clock: Callable[[], datetime] = utcnow) -> None:
        self.rt, self.clock = rt, clock

    def tick(self) -> list[tuple[str, str]]:
        """Enqueue due runs; returns (directory id, "daily" | "incremental") pairs."""
        now = self.clock()
        started: list[tuple[str, str]] = []
        d, o, r = directories, organizations, sync_runs
        with self.rt.engine.begin() as conn:
            rows = conn.execute(
                sa.select(d.c.id, d.c.cursor, o.c.timezone, o.c.daily_sync_time, o.c.incremental_minutes)
                .join(o, o.c.id == d.c.organization_id)
                .where(d.c.state.in_(["linked", "invalid_credentials"]), d.c.type.in_(pulled_types()))
            ).all()
            waiting = repo.held_directories(conn)
            for directory_id, cursor, tz, at, every in rows:
                if directory_id in waiting:
                    continue  # a held run waits for an admin; more runs would only hold again
                last_full = as_utc(
                    conn.execute(
                        sa.select(sa.func.max(r.c.started_at)).where(
                            r.c.directory_id == directory_id, r.c.kind == "full"
                        )
                    ).scalar()
                )
                last_any = as_utc(
                    conn.execute(
                        sa.select(sa.func.max(r.c.started_at)).where(
                            r.c.directory_id == directory_id, r.c.kind != "dry_run"
                        )
                    ).scalar()
                )
                if last_full is None or last_full < last_slot(now, tz, at):
                    jobs.enqueue_sync(conn, directory_id, trigger="schedule", full=True)
                    started.append((directory_id, "daily"))
                elif every and cursor and (last_any is None or now - last_any >= timedelta(minutes=every)):
                    jobs.enqueue_sync(conn, directory_id, trigger="schedule")
                    started.append((directory_id, "incremental"))
        return started
