"""The FastAPI application."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from roster import __version__
from roster.accounts import passwords
from roster.api import (
    accounts,
    admin,
    admin_agent,
    admin_keys,
    admin_runs,
    admin_scim,
    agent,
    errors,
    lifecycle,
    observability,
    portal,
    scim,
    sso,
    webhooks,
    workos,
)
from roster.api.edge import BodyLimit, NoNul
from roster.api.sync_runner import SyncRunner
from roster.events.webhooks import Deliverer
from roster.logs import redact_access_log
from roster.runtime import Runtime
from roster.scim.requests_log import Recorder
from roster.sync.schedule import Schedules
from roster.sync.scheduler import AccessChecks, NearRealTime, run_ticks
from roster.sync.worker import Worker
from roster.web import routes as console


def create_app(rt: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        passwords.warm_up()  # the first unknown account's sign-in costs what every other does
        redact_access_log()  # link tokens never reach the access log
        near = NearRealTime(rt.engine, lambda d: app.state.runner.submit(d, trigger="near_real_time"))
        checks = AccessChecks(rt)
        schedules = Schedules(rt)
        stop = threading.Event()
        thread = threading.Thread(
            target=run_ticks, args=(stop, [near.tick, checks.tick]), name="roster-checks", daemon=True
        )
        thread.start()
        # schedules tick on their own: an access check waiting on an unreachable server never delays them
        scheduler = threading.Thread(
            target=run_ticks, args=(stop, [schedules.tick]), name="roster-scheduler", daemon=True
        )
        scheduler.start()
        deliverer = Deliverer(rt)
        sender = threading.Thread(target=deliverer.run_forever, name="roster-webhooks", daemon=True)
        sender.start()
        worker = Worker(rt)
        working = threading.Thread(target=worker.run_forever, name="roster-worker", daemon=True)
        working.start()
        app.state.scim_log.start()
        yield
        app.state.scim_log.stop()
        stop.set()
        deliverer.stop()
        worker.stop()
        thread.join(10)
        scheduler.join(10)
        sender.join(30)
        working.join(600)
        app.state.runner.shutdown()

    app = FastAPI(
        title="Roster",
        version=__version__,
        lifespan=lifespan,
        description="Directory synchronization with a WorkOS-compatible API.",
        docs_url=None,  # served by the console with local assets (no CDN): roster.web.routes
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.runner = SyncRunner(rt)
    app.state.scim_log = Recorder(rt.engine)
    errors.install(app)
    console.install(app)
    app.add_middleware(NoNul)
    app.add_middleware(BodyLimit, limit=rt.settings.max_request_bytes)  # the outer one: first

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. No authentication."""
        return {"status": "ok"}

    app.include_router(workos.router, responses=errors.ERRORS)
    app.include_router(sso.router, responses=errors.ERRORS)
    app.include_router(scim.router)
    app.include_router(agent.router)
    app.include_router(admin.router, responses=errors.ERRORS)
    app.include_router(admin_keys.router, responses=errors.ERRORS)
    app.include_router(admin_runs.router, responses=errors.ERRORS)
    app.include_router(admin_scim.router, responses=errors.ERRORS)
    app.include_router(admin_agent.router, responses=errors.ERRORS)
    app.include_router(accounts.router, responses=errors.ERRORS)
    app.include_router(lifecycle.router, responses=errors.ERRORS)
    app.include_router(webhooks.router, responses=errors.ERRORS)
    app.include_router(portal.router, responses=errors.ERRORS)
    app.include_router(observability.router)
    app.state.metrics = observability.registry_for(rt)
    return app
