"""/healthz (the process answers), /readyz (the store answers and is migrated), /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from roster.domain.changes import ChangeKind
from roster.events.webhooks import backlog as pending_count
from roster.runtime import Runtime
from roster.store.db import as_utc, utcnow
from roster.store.schema import directories, jobs, sync_runs, webhook_endpoints

router = APIRouter(tags=["operations"])


# what a run changed: the kinds of change, not notes such as skipped entries or derived counts
_CHANGES = tuple(k for k in ChangeKind if k not in (ChangeKind.SKIPPED, ChangeKind.NOTE))


class StoreCollector(Collector):
    """Read at scrape time from the database, so every worker and server reports the same numbers."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        with self.rt.engine.connect() as conn:
            runs = GaugeMetricFamily("roster_sync_runs", "Sync runs by status", labels=["status"])
            for status, count in conn.execute(
                sa.select(sync_runs.c.status, sa.func.count())
                .where(sync_runs.c.kind != "dry_run")  # a dry run changes nothing: not a run here
                .group_by(sync_runs.c.status)
            ):
                runs.add_metric([status], count)
            yield runs
            duration = GaugeMetricFamily(
                "roster_sync_last_run_seconds",
                "Duration of each directory's last finished run",
                labels=["directory"],
            )
            speed = GaugeMetricFamily(
                "roster_sync_last_run_objects_per_second",
                "Objects changed per second in that run",
                labels=["directory"],
            )
            latest = (
                sa.select(sync_runs.c.directory_id, sa.func.max(sync_runs.c.id).label("id"))
                .where(sync_runs.c.finished_at.is_not(None), sync_runs.c.kind != "dry_run")
                .group_by(sync_runs.c.directory_id)
                .subquery()
            )
            for row in conn.execute(
                sa.select(sync_runs).join(latest, latest.c.id == sync_runs.c.id)
            ).mappings():
                started, finished = as_utc(row["started_at"]), as_utc(row["finished_at"])
                seconds = max((finished - started).total_seconds(), 1e-6) if started and finished else 0.0
                counts = row["counts"] or {}
                changed = sum(counts.get(str(kind), 0) for kind in _CHANGES)
                duration.add_metric([row["directory_id"]], seconds)
                speed.add_metric([row["directory_id"]], changed / seconds if seconds else 0.0)
            yield duration
            yield speed
            check = GaugeMetricFamily(
                "roster_directory_access_ok", "1 when the last access check succeeded", labels=["directory"]
            )
            for directory_id, ok in conn.execute(sa.select(directories.c.id, directories.c.last_check_ok)):
                if ok is not None:
                    check.add_metric([directory_id], 1.0 if ok else 0.0)
            yield check
            backlog = GaugeMetricFamily(
                "roster_webhook_backlog", "Events not yet delivered, per endpoint", labels=["endpoint"]
            )
            failing = GaugeMetricFamily(
                "roster_webhook_failing", "1 when the endpoint is failing", labels=["endpoint"]
            )
            for ep in conn.execute(sa.select(webhook_endpoints)).mappings():
                backlog.add_metric([ep["id"]], pending_count(conn, ep))
                failing.add_metric([ep["id"]], 1.0 if ep["failing"] else 0.0)
            yield backlog
            yield failing
            queue = GaugeMetricFamily("roster_jobs", "Jobs by status", labels=["status"])
            for status, count in conn.execute(
                sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
            ):
                queue.add_metric([status], count)
            yield queue
            oldest = as_utc(
                conn.execute(
                    sa.select(sa.func.min(jobs.c.created_at)).where(jobs.c.status == "queued")
                ).scalar()
            )
            waiting = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
            yield GaugeMetricFamily(
                "roster_jobs_oldest_queued_seconds",
                "Age of the oldest queued job (0: none); if it keeps growing, the workers do not keep up",
                value=max(0.0, waiting),
            )


@router.get("/readyz", responses={503: {"description": "The store does not answer or is not migrated."}})
def readyz(request: Request) -> JSONResponse:
    """Readiness: the store answers and its schema is current. No authentication."""
    rt: Runtime = request.app.state.runtime
    try:
        with rt.engine.connect() as conn:
            version = conn.execute(sa.text("select version_num from alembic_version")).scalar()
    except Exception as exc:  # the store is down or not migrated: not ready
        return JSONResponse({"status": "not ready", "error": str(exc).splitlines()[0]}, status_code=503)
    return JSONResponse({"status": "ready", "schema": version})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition."},
        401: {"description": "No API key, or one that is not valid."},
        403: {"description": "Not an admin API key."},
    },
)
def metrics(request: Request) -> Response:
    """Prometheus exposition; it names every organization's directories, so it needs an admin API key."""
    from roster.api.auth import principal, require_admin

    require_admin(principal(request))
    registry: Any = request.app.state.metrics
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")


def registry_for(rt: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StoreCollector(rt))
    return registry
