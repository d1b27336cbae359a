"""The SCIM 2.0 endpoint of a ``scim`` directory: ``{ROSTER_PUBLIC_URL}/scim/v2/{directory id}``.

It tolerates what provider set-up screens commonly get wrong: a trailing slash, a token sent
without ``Bearer``, ``application/json`` for ``application/scim+json``. Every answer, errors
included, is a SCIM body (RFC 7644 section 3.12); every request is logged for the directory's
admins, its body redacted.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from roster.api.auth import RuntimeDep
from roster.runtime import Runtime
from roster.scim import requests_log, schema, service, tokens
from roster.scim.errors import ScimError, invalid_syntax
from roster.scim.query import parse_query

router = APIRouter(tags=["scim"])
log = logging.getLogger(__name__)
MEDIA = "application/scim+json"
_KINDS = {"users": "User", "groups": "Group"}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/scim/v2/{directory_id}", methods=_METHODS, include_in_schema=False)
@router.api_route("/scim/v2/{directory_id}/{rest:path}", methods=_METHODS, include_in_schema=False)
async def scim_endpoint(request: Request, rt: RuntimeDep, directory_id: str, rest: str = "") -> Response:
    raw = await request.body()
    reply = await run_in_threadpool(_handle, rt, request, directory_id, rest, raw)
    if reply.status != 401:  # only what the directory's own provider sent
        agent = request.headers.get("user-agent")
        entry = requests_log.entry(directory_id, request.method, _path(request), reply, raw, agent)
        request.app.state.scim_log.add(entry)
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return JSONResponse(reply.body, status_code=reply.status, media_type=MEDIA, headers=reply.headers)


def _path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _handle(rt: Runtime, request: Request, directory_id: str, rest: str, raw: bytes) -> service.Reply:
    try:
        _authorize(rt, directory_id, request.headers.get("authorization"))
        ep = service.Endpoint(
            rt.engine, directory_id, f"{rt.settings.public_url.rstrip('/')}/scim/v2/{directory_id}"
        )
        return _dispatch(
            ep, request.method, [p for p in rest.split("/") if p], dict(request.query_params), raw
        )
    except ScimError as exc:
        return service.Reply(exc.status, exc.body())


def _authorize(rt: Runtime, directory_id: str, header: str | None) -> None:
    """401 for a missing or wrong token and for an unknown directory alike (nothing to enumerate)."""
    token = (header or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    with rt.engine.connect() as conn:
        state = tokens.authenticate(conn, directory_id, token) if token else None
    if state is None:
        raise ScimError(401, "authorization: a valid bearer token of this directory is required")
    if state in ("inactive", "deleting"):
        raise ScimError(403, "this directory is disabled in Roster; enable it to provision again")


MAX_NESTING = 32


def _body(raw: bytes) -> Any:
    """The request's JSON: finite numbers only, nested at most MAX_NESTING deep."""
    if not raw.strip():
        raise invalid_syntax("body: a JSON body is required")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise invalid_syntax(f"body: nested more than {MAX_NESTING} levels deep") from None
    except ValueError as exc:
        raise invalid_syntax(f"body: not valid JSON ({exc})") from None
    if _depth(value) > MAX_NESTING:
        raise invalid_syntax(f"body: nested more than {MAX_NESTING} levels deep")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large a number")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_NESTING:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _dispatch(
    ep: service.Endpoint, method: str, parts: list[str], params: dict[str, str], raw: bytes
) -> service.Reply:
    if not parts:
        raise ScimError(404, "use /Users, /Groups, /ServiceProviderConfig, /ResourceTypes or /Schemas")
    head = parts[0].lower()
    if head in ("serviceproviderconfig", "resourcetypes", "schemas"):
        if method != "GET":
            raise ScimError(405, f"{parts[0]}: only GET is supported")
        return service.Reply(200, _discovery(ep, head, parts[1:]))
    if head == ".search" and len(parts) == 1:
        if method != "POST":
            raise ScimError(405, ".search: only POST is supported")
        return service.search_all(ep, _search_params(_body(raw)))
    kind = _KINDS.get(head)
    if kind is None or len(parts) > 2:
        raise ScimError(404, f"{'/'.join(parts)}: no such SCIM endpoint (searches: /Users/.search)")
    if len(parts) == 1:
        if method == "GET":
            return service.list_resources(ep, kind, parse_query(params, kind))
        if method == "POST":
            create = service.create_user if kind == "User" else service.create_group
            return create(ep, _body(raw))
        raise ScimError(405, f"{parts[0]}: {method} needs a resource id")
    if parts[1] == ".search":
        if method != "POST":
            raise ScimError(405, ".search: only POST is supported")
        return service.list_resources(ep, kind, parse_query(_search_params(_body(raw)), kind))
    return _one(ep, kind, method, parts[1], params, raw)


def _search_params(body: Any) -> dict[str, str]:
    """A SearchRequest (RFC 7644 section 3.4.3) as the query parameters of a list request."""
    if not isinstance(body, dict):
        raise invalid_syntax("body: must be a SearchRequest object")
    params = {}
    for key, value in body.items():
        if key.lower() == "schemas" or value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        params[key] = str(value)
    return params


def _one(
    ep: service.Endpoint, kind: str, method: str, scim_id: str, params: dict[str, str], raw: bytes
) -> service.Reply:
    user = kind == "User"
    if method == "GET":
        return service.get_resource(ep, kind, scim_id, parse_query(params, kind))
    if method == "PUT":
        return (service.replace_user if user else service.replace_group)(ep, scim_id, _body(raw))
    if method == "PATCH":
        return (service.patch_user if user else service.patch_group)(ep, scim_id, _body(raw))
    if method == "DELETE":
        return service.delete(ep, kind, scim_id)
    raise ScimError(405, f"{method} is not supported on a single resource")


def _discovery(ep: service.Endpoint, head: str, rest: list[str]) -> dict[str, Any]:
    base = ep.base_url
    if head == "serviceproviderconfig":
        return schema.service_provider_config(base)
    if head == "resourcetypes":
        docs = {name: schema.resource_type_document(name, base) for name in schema.RESOURCE_TYPES}
    else:
        docs = {urn: schema.schema_document(urn, base) for urn in schema.schema_documents()}
    if rest:
        found = docs.get(rest[0])
        if found is None:
            raise ScimError(404, f"{rest[0]}: not found")
        return found
    items = list(docs.values())
    return {
        "schemas": [schema.LIST],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }
