"""The console's routes, static assets and error pages, added to the API's application."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from roster.web import auth_pages, directory_pages, people_pages, run_pages
from roster.web.render import HERE, Redirect, Refused, current, page, redirect


def install(app: FastAPI) -> None:
    for module in (auth_pages, directory_pages, run_pages, people_pages):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(Redirect)
    async def _redirect(_request: Request, exc: Redirect) -> Response:
        return redirect(exc.location)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        context = {"title": exc.title, "message": exc.message}
        return page(request, "message.html", context, current(request), status=exc.status)
