"""The console's routes, static assets and error pages, added to the API's application."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from roster.web import (
    action_pages,
    auth_pages,
    directory_pages,
    link_pages,
    people_pages,
    run_pages,
    settings_pages,
    setup_pages,
    webhook_pages,
)
from roster.web.render import HERE, Redirect, Refused, current, page, redirect


def install(app: FastAPI) -> None:
    for module in (
        action_pages,
        auth_pages,
        directory_pages,
        run_pages,
        people_pages,
        setup_pages,
        link_pages,
        webhook_pages,
        settings_pages,
    ):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    _docs(app)

    @app.exception_handler(Redirect)
    async def _redirect(_request: Request, exc: Redirect) -> Response:
        return redirect(exc.location)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        context = {"title": exc.title, "message": exc.message}
        return page(request, "message.html", context, current(request), status=exc.status)


def _docs(app: FastAPI) -> None:
    """The API's Swagger UI at ``/docs``, its script and stylesheet served by Roster (swagger-ui-py
    ships them), so that it works on a network without internet access."""
    spec = importlib.util.find_spec("swagger_ui")  # its files only: nothing of it is imported
    assert spec is not None and spec.submodule_search_locations, "swagger-ui-py is a dependency"
    assets = Path(spec.submodule_search_locations[0]) / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Roster API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
