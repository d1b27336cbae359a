"""The FastAPI application."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from roster import __version__
from roster.accounts import passwords
from roster.api import (
    accounts,
    admin,
    admin_scim,
    errors,
    lifecycle,
    observability,
    scim,
    sso,
    webhooks,
    workos,
)
from roster.api.sync_runner import SyncRunner
from roster.events.webhooks import Deliverer
from roster.runtime import Runtime
from roster.sync.schedule import Schedules
from roster.sync.scheduler import AccessChecks, NearRealTime, run_ticks
from roster.sync.worker import Worker


def create_app(rt: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        passwords.warm_up()  # the first unknown account's sign-in costs what every other does
        near = NearRealTime(rt.engine, lambda d: app.state.runner.submit(d, trigger="near_real_time"))
        checks = AccessChecks(rt)
        schedules = Schedules(rt)
        stop = threading.Event()
        thread = threading.Thread(
            target=run_ticks,
            args=(stop, [near.tick, checks.tick, schedules.tick]),
            name="roster-scheduler",
            daemon=True,
        )
        thread.start()
        deliverer = Deliverer(rt)
        sender = threading.Thread(target=deliverer.run_forever, name="roster-webhooks", daemon=True)
        sender.start()
        worker = Worker(rt)
        working = threading.Thread(target=worker.run_forever, name="roster-worker", daemon=True)
        working.start()
        yield
        stop.set()
        deliverer.stop()
        worker.stop()
        thread.join(10)
        sender.join(30)
        working.join(600)
        app.state.runner.shutdown()

    app = FastAPI(
        title="Roster",
        version=__version__,
        lifespan=lifespan,
        description="Directory synchronization with a WorkOS-compatible API.",
    )
    app.state.runtime = rt
    app.state.runner = SyncRunner(rt)
    errors.install(app)
    limit = rt.settings.max_request_bytes

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return JSONResponse(
                {"code": "request_too_large", "message": f"request body is larger than {limit} bytes"},
                status_code=413,
            )
        return await call_next(request)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(workos.router)
    app.include_router(sso.router)
    app.include_router(scim.router)
    app.include_router(admin.router)
    app.include_router(admin_scim.router)
    app.include_router(accounts.router)
    app.include_router(lifecycle.router)
    app.include_router(webhooks.router)
    app.include_router(observability.router)
    app.state.metrics = observability.registry_for(rt)
    return app
