"""Checks at the edge, before any route runs: the body's size (declared or streamed) and NUL
characters in the path and query (PostgreSQL refuses them in text; SQLite would store them).
Plain ASGI middlewares: Starlette's ``BaseHTTPMiddleware`` costs about a millisecond a request."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roster.scim.errors import ScimError


def _refuse(scope: Scope, status: int, code: str, message: str) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if str(scope.get("path", "")).startswith("/scim/"):  # a SCIM client reads SCIM errors
        body = ScimError(status, message).body()
    return JSONResponse(body, status_code=status)


class BodyLimit:
    """413 for a body larger than ``limit``: a declared length at once, a chunked body as soon as
    it has streamed past the limit (it is held, at most ``limit`` bytes, and replayed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"body: the request body is larger than {self.limit} bytes"
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await _refuse(scope, 413, "request_too_large", message)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        size = 0
        while True:
            part = await receive()
            held.append(part)
            size += len(part.get("body", b""))
            if size > self.limit:
                await _refuse(scope, 413, "request_too_large", message)(scope, receive, send)
                return
            if part["type"] != "http.request" or not part.get("more_body", False):
                break
        await self.app(scope, _replaying(held, receive), send)


class NoNul:
    """400 for a NUL character in the path or a query parameter, naming where it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _nul_in(scope)
        content_type = Headers(scope=scope).get("content-type", "")
        if where is None and content_type.startswith("application/x-www-form-urlencoded"):
            held = await _read_all(receive)  # a console form: small, and under the body limit already
            where = _nul_in_form(b"".join(m.get("body", b"") for m in held))
            receive = _replaying(held, receive)
        if where is not None:
            text = f"{where}: must not contain a NUL character"
            await _refuse(scope, 400, "invalid_request", text)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _read_all(receive: Receive) -> list[Message]:
    held: list[Message] = []
    while True:
        part = await receive()
        held.append(part)
        if part["type"] != "http.request" or not part.get("more_body", False):
            return held


def _replaying(held: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        return held.pop(0) if held else await receive()

    return replay


def _nul_in_form(body: bytes) -> str | None:
    for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return f"form field {name.replace(chr(0), '')!r}"
    return None


def _nul_in(scope: Scope) -> str | None:
    raw = scope.get("raw_path") or b""
    if "\x00" in str(scope.get("path", "")) or "\x00" in unquote(raw.decode("latin-1")):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query.lower() or "\x00" in query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return f"query parameter {name.replace(chr(0), '')!r}"
        return "query"
    return None
