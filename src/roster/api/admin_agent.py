"""Admin API for on-prem agents: enrolment codes, the agents of a directory, revocation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from roster.agent import registry
from roster.api.auth import PrincipalDep, RuntimeDep, owned_directory
from roster.api.errors import ApiError
from roster.api.models import Strict
from roster.store.schema_access import agents

router = APIRouter(prefix="/api/v1", tags=["admin"])


class CodeIn(Strict):
    ttl_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


@router.post("/directories/{directory_id}/agent_codes", status_code=201)
def agent_code(directory_id: str, body: CodeIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """A one-time enrolment code (shown once) for an agent of this directory."""
    owned_directory(rt, who, directory_id)
    try:
        with rt.engine.begin() as conn:
            code, expires = registry.issue_code(conn, directory_id, timedelta(minutes=body.ttl_minutes))
    except registry.AgentRefused as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return {"object": "agent_code", "directory_id": directory_id, "code": code, "expires_at": expires}


@router.get("/directories/{directory_id}/agents")
def directory_agents(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """The on-prem agents enrolled for a directory, with their last heartbeat and version."""
    owned_directory(rt, who, directory_id)
    with rt.engine.connect() as conn:
        return {"object": "list", "data": registry.listing(conn, directory_id)}


@router.delete("/agents/{agent_id}", status_code=204)
def revoke_agent(agent_id: str, rt: RuntimeDep, who: PrincipalDep) -> None:
    """End an agent at once: its next request is refused."""
    import sqlalchemy as sa

    with rt.engine.connect() as conn:
        directory_id = conn.execute(sa.select(agents.c.directory_id).where(agents.c.id == agent_id)).scalar()
    if directory_id is None:
        raise ApiError(404, "entity_not_found", f"agent {agent_id} not found")
    owned_directory(rt, who, directory_id)
    with rt.engine.begin() as conn:
        registry.revoke(conn, agent_id)
