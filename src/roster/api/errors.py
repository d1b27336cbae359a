"""Error bodies in the shape the WorkOS SDK reads: ``{"message", "code", "errors"?}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from roster.accounts.service import Conflict, ManagedField
from roster.connectors.base import ConfigError
from roster.sources import source_types
from roster.store.repo import NotFound
from roster.sync.approvals import NotPending


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        self.status, self.code, self.message, self.errors = status, code, message, errors
        super().__init__(message)


class FieldError(BaseModel):
    field: str
    code: str
    message: str | None = None


class ErrorOut(BaseModel):
    """Every error of the API: a stable ``code``, a ``message`` naming the field, and per-field
    ``errors`` for invalid input."""

    code: str
    message: str
    errors: list[FieldError] | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# The errors any operation of the API may answer with (documented on every operation).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("A malformed request: a bad cursor, a NUL character, a body that is not JSON."),
    401: _error("No API key, or one that is not valid or was revoked."),
    403: _error("The key may not do this (an organization key asking for an admin operation)."),
    404: _error("No such object, or one of another organization (the same answer)."),
    409: _error("The object's state does not allow it (directory-managed field, run not running...)."),
    413: _error("The body is larger than ROSTER_MAX_REQUEST_BYTES."),
    422: _error("Invalid input; ``message`` and ``errors`` name the field and the rule."),
}


def _body(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return body


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "entity_not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.code, exc.message, exc.errors), status_code=exc.status)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(_body("entity_not_found", str(exc.args[0])), status_code=404)

    @app.exception_handler(ManagedField)
    async def _managed(_: Request, exc: ManagedField) -> JSONResponse:
        body = _body("directory_managed", str(exc))
        body.update(field=exc.field, directory=exc.directory)
        return JSONResponse(body, status_code=409)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(_body("conflict", str(exc)), status_code=409)

    @app.exception_handler(NotPending)
    async def _not_pending(_: Request, exc: NotPending) -> JSONResponse:
        return JSONResponse(_body("not_pending_approval", str(exc)), status_code=409)

    @app.exception_handler(ValueError)
    async def _value(_: Request, exc: ValueError) -> JSONResponse:
        field = str(exc).split(":", 1)[0]
        return JSONResponse(
            _body("invalid_request_parameters", str(exc), [{"field": field, "code": "invalid"}]),
            status_code=422,
        )

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        field = str(exc).split(":", 1)[0]
        return JSONResponse(
            _body("invalid_request_parameters", str(exc), [{"field": field, "code": "invalid"}]),
            status_code=422,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = _field(err)
            errors.append(
                {
                    "field": ".".join(loc) or "body",
                    "code": err.get("type", "invalid"),
                    "message": err.get("msg", ""),
                }
            )
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        message = f"{first['field']}: {first.get('message', 'invalid')}"
        return JSONResponse(_body("invalid_request_parameters", message, errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return JSONResponse(
            _body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )


def _field(err: Any) -> list[str]:
    """Where a validation error is, as the client named it: a body that is one of several
    shapes (directories: by ``type``) does not name the shape's tag in the field."""
    raw = [str(p) for p in err.get("loc", ())]
    if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        return ["type"]
    if len(raw) >= 3 and raw[0] == "body" and raw[1] in source_types():
        raw = raw[:1] + raw[2:]
    return [p for p in raw if p not in ("body", "query", "path")]
