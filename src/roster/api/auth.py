"""Bearer API keys. A key speaks for one organization, or for all (an admin key)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request

from roster.api.errors import ApiError
from roster.runtime import Runtime
from roster.store import repo
from roster.store.db import utcnow
from roster.store.repo import NotFound, Principal

log = logging.getLogger(__name__)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'")
    rt = runtime(request)
    with rt.engine.connect() as conn:
        who = repo.authenticate(conn, token.strip())
    if who is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    now = utcnow()
    if who.last_used_at is None or now - who.last_used_at >= TOUCH_EVERY:
        # off the request: a sync's long transaction may hold SQLite's write lock for a while
        threading.Thread(target=_touch, args=(rt, who.key_id, now), daemon=True).start()
    return who


TOUCH_EVERY = timedelta(minutes=5)  # "last used" is kept to this precision


def _touch(rt: Runtime, key_id: str, now: datetime) -> None:
    try:
        with rt.engine.begin() as conn:
            repo.touch_api_key(conn, key_id, now)
    except Exception:  # best effort: a busy store must not turn into an error anywhere
        log.warning("could not record the last use of API key %s", key_id, exc_info=True)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
PrincipalDep = Annotated[Principal, Depends(principal)]


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "this needs an admin API key (not scoped to one organization)")


def check_org(who: Principal, organization_id: str, what: str, object_id: str) -> None:
    """Objects of another organization are reported as missing, not forbidden."""
    if not who.can_see(organization_id):
        raise NotFound(f"{what} {object_id!r} not found")


def scope_org(who: Principal, requested: str | None) -> str | None:
    """The organization a list is restricted to."""
    if who.organization_id is None:
        return requested
    if requested is not None and requested != who.organization_id:
        raise ApiError(404, "entity_not_found", f"organization {requested!r} not found")
    return who.organization_id


def owned_directory(rt: Runtime, who: Principal, directory_id: str) -> dict[str, Any]:
    """The directory, when ``who`` may act on it (404 otherwise, as for any other organization's)."""
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, directory_id)
    check_org(who, row["organization_id"], "directory", directory_id)
    return row
