"""Admin API for SCIM directories: rotate the bearer token, read what the provider sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from roster.api.auth import PrincipalDep, RuntimeDep, owned_directory
from roster.api.models import Mapping_, Strict
from roster.directories import rotate_scim_token, scim_base_url
from roster.scim import requests_log

router = APIRouter(prefix="/api/v1", tags=["admin"])


class ScimDirectoryIn(Strict):
    """A directory the identity provider pushes to over SCIM 2.0; the answer carries its endpoint
    URL (``scim_base_url``) and bearer token (``scim_token``), shown this once."""

    organization_id: str
    name: str = Field(min_length=1, max_length=200)
    type: Literal["scim"]
    provider: Literal["okta", "entra", "onelogin", "jumpcloud", "pingfederate", "rippling", "generic"] = (
        "generic"
    )
    mapping: Mapping_ | None = None


class TokenIn(Strict):
    grace_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60, description="How long the old token works.")


@router.post("/directories/{directory_id}/scim_token", status_code=201)
def rotate_token(directory_id: str, body: TokenIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """A new bearer token, shown this once; the current one keeps working for ``grace_minutes``."""
    owned_directory(rt, who, directory_id)
    token = rotate_scim_token(rt, directory_id, timedelta(minutes=body.grace_minutes))
    return {
        "object": "scim_token",
        "directory_id": directory_id,
        "scim_base_url": scim_base_url(rt.settings, directory_id),
        "scim_token": token,
        "previous_token_valid_minutes": body.grace_minutes,
    }


@router.get("/directories/{directory_id}/scim_requests")
def scim_requests(
    directory_id: str,
    request: Request,
    rt: RuntimeDep,
    who: PrincipalDep,
    limit: int = Query(default=100, ge=1, le=500),
) -> dict[str, Any]:
    """The newest requests the provider sent: method, path, status, User-Agent, redacted body, run."""
    owned_directory(rt, who, directory_id)
    request.app.state.scim_log.flush()
    with rt.engine.connect() as conn:
        return {"object": "list", "data": requests_log.recent(conn, directory_id, limit)}
