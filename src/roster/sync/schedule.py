"""Scheduled runs: a daily full sync at the organization's local time, and optional incremental runs.

``last_slot`` and ``next_slot`` are pure (the clock is passed in); ``Schedules.tick`` enqueues
the runs that are due, as jobs (coalesced with anything already queued).
"""

from __future__ import annotations

import hashlib
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
SCHEDULED_STATES = ("linked", "invalid_credentials")  # a refused bind still runs daily, to see a fix


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


def spread(directory_id: str, window_seconds: float) -> timedelta:
    """The directory's fixed offset within the spread window (a hash of its id: stable, uniform)."""
    if window_seconds <= 0:
        return timedelta(0)
    digest = int(hashlib.sha256(directory_id.encode()).hexdigest()[:12], 16)
    return timedelta(seconds=digest % int(window_seconds * 1000) / 1000)


def latest_due(now: datetime, tz: str, at: str, offset: timedelta) -> datetime:
    """When the directory's most recent daily run became due: its slot plus its offset."""
    return last_slot(now - offset, tz, at) + offset


def next_due(now: datetime, tz: str, at: str, offset: timedelta) -> datetime:
    """When the directory's next daily run is due (after ``now``): its slot plus its offset."""
    return next_slot(now - offset, tz, at) + offset


class Schedules:
    def __init__(self, rt: Runtime, clock: Callable[[], datetime] = utcnow) -> None:
        self.rt, self.clock = rt, clock

    def tick(self) -> list[tuple[str, str]]:
        """Enqueue due runs; returns (directory id, "daily" | "incremental") pairs.

        A daily run is due at the organization's time plus the directory's offset in the spread
        window. A directory whose job is running is left alone (its run covers the due time) and a
        queued one absorbs the new run (coalesced), so each directory runs once per due time
        however many workers tick."""
        now = self.clock()
        window = self.rt.settings.schedule_spread_seconds
        started: list[tuple[str, str]] = []
        d, o, r = directories, organizations, sync_runs
        full = sa.func.max(sa.case((r.c.kind == "full", r.c.started_at)))
        latest = (
            sa.select(
                r.c.directory_id, full.label("last_full"), sa.func.max(r.c.started_at).label("last_any")
            )
            .where(r.c.kind != "dry_run")
            .group_by(r.c.directory_id)
            .subquery()
        )
        with self.rt.engine.begin() as conn:
            rows = conn.execute(
                sa.select(
                    d.c.id,
                    d.c.cursor,
                    o.c.timezone,
                    o.c.daily_sync_time,
                    o.c.incremental_minutes,
                    latest.c.last_full,
                    latest.c.last_any,
                )
                .join(o, o.c.id == d.c.organization_id)
                .outerjoin(latest, latest.c.directory_id == d.c.id)
                .where(d.c.state.in_(SCHEDULED_STATES), d.c.type.in_(pulled_types()))
            ).all()
            skip = repo.held_directories(conn) | jobs.running_directories(conn)
            daily: list[tuple[datetime, str]] = []
            for directory_id, cursor, tz, at, every, last_full, last_any in rows:
                if directory_id in skip:
                    continue  # a held run waits for an admin; a running job's run covers this
                last_full, last_any = as_utc(last_full), as_utc(last_any)
                due = latest_due(now, tz, at, spread(directory_id, window))
                if last_full is None or last_full < due:
                    daily.append((due, directory_id))
                elif every and cursor and (last_any is None or now - last_any >= timedelta(minutes=every)):
                    jobs.enqueue_sync(conn, directory_id, trigger="schedule")
                    started.append((directory_id, "incremental"))
            for due, directory_id in sorted(daily):  # queued in due order: the oldest due runs first
                jobs.enqueue_sync(conn, directory_id, trigger="schedule", full=True, due=due.isoformat())
                started.append((directory_id, "daily"))
        return started
