"""The endpoints agents call: enrolment with a one-time code, then heartbeats, the long-polled task
queue and uploads, every call carrying the agent's signed proof (``roster.agent.proof``)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from roster.agent import registry, tasks
from roster.api.auth import RuntimeDep
from roster.api.errors import ApiError
from roster.api.models import Strict
from roster.runtime import Runtime

router = APIRouter(prefix="/agent/v1", tags=["agent"], include_in_schema=False)


class EnrollIn(Strict):
    code: str = Field(min_length=1, max_length=100)
    csr: str = Field(min_length=1, max_length=10_000)
    hostname: str = Field(default="", max_length=255)
    version: str = Field(min_length=1, max_length=32)


@router.post("/enroll", status_code=201)
def enroll(body: EnrollIn, rt: RuntimeDep) -> dict[str, Any]:
    """An agent enrolls with its one-time code and a certificate request; the answer is its client
    certificate."""
    try:
        with rt.engine.begin() as conn:
            done = registry.enroll(conn, rt.box, body.code, body.csr, body.hostname, body.version)
    except registry.AgentRefused as exc:
        raise ApiError(403, "enrolment_refused", str(exc)) from None
    return {
        "agent_id": done.agent_id,
        "directory_id": done.directory["id"],
        "organization_id": done.directory["organization_id"],
        "certificate": done.certificate_pem,
        "ca": done.ca_pem,
    }


async def _agent(request: Request, rt: Runtime) -> tuple[dict[str, Any], bytes]:
    body = await request.body()
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k.lower(): v for k, v in request.headers.items()}

    def check() -> dict[str, Any]:
        with rt.engine.connect() as conn:
            return registry.authenticate(conn, headers, request.method, target, body)

    try:
        return await run_in_threadpool(check), body
    except registry.AgentRefused as exc:
        raise ApiError(401, "agent_refused", str(exc)) from None


class RenewIn(Strict):
    csr: str = Field(min_length=1, max_length=10_000)


@router.post("/renew")
async def renew_certificate(request: Request, rt: RuntimeDep) -> dict[str, str]:
    """A new certificate for a new key, asked for with the current one (before it expires)."""
    agent, body = await _agent(request, rt)
    given = RenewIn.model_validate_json(body)

    def sign() -> registry.Enrolled:
        with rt.engine.begin() as conn:
            return registry.renew(conn, rt.box, agent, given.csr)

    try:
        done = await run_in_threadpool(sign)
    except registry.AgentRefused as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return {"certificate": done.certificate_pem, "ca": done.ca_pem}


@router.post("/heartbeat")
async def heartbeat(request: Request, rt: RuntimeDep) -> dict[str, str]:
    """An agent reports that it is alive (host name, version, its last error)."""
    agent, body = await _agent(request, rt)
    data = json.loads(body or b"{}")

    def beat() -> None:
        with rt.engine.begin() as conn:
            registry.heartbeat(
                conn, agent["id"], data.get("hostname"), data.get("version"), data.get("error")
            )

    await run_in_threadpool(beat)
    return {"status": "ok"}


@router.get("/tasks/next")
async def next_task(request: Request, rt: RuntimeDep, wait: int = 20) -> Response:
    """The next task of the agent's directory, waiting up to ``wait`` seconds for one (204: none)."""
    agent, _ = await _agent(request, rt)
    deadline = time.monotonic() + max(0, min(wait, 50))

    def claim() -> dict[str, Any] | None:
        try:
            with rt.engine.begin() as conn:
                return tasks.claim(conn, agent, _lease(rt))
        except sa.exc.OperationalError:  # SQLite busy with a long ingest: look again next round
            return None

    def seen() -> None:  # a poll is a sign of life: once per poll, not per look at the queue
        try:
            with rt.engine.begin() as conn:
                registry.heartbeat(conn, agent["id"], None, None, agent["last_error"])
        except sa.exc.OperationalError:
            pass  # the next poll or heartbeat records it

    await run_in_threadpool(seen)
    while True:
        if await request.is_disconnected():  # a task taken for a gone agent would wait out its lease
            return Response(status_code=204)
        task = await run_in_threadpool(claim)
        if task is not None:
            return JSONResponse(task)
        if time.monotonic() >= deadline:
            return Response(status_code=204)
        await _sleep(0.25)


def _lease(rt: Runtime) -> timedelta:
    return timedelta(seconds=rt.settings.agent_lease_seconds)


@router.post("/tasks/{task_id}/renew")
async def renew(task_id: str, request: Request, rt: RuntimeDep) -> dict[str, str]:
    """An agent keeps the lease on the task it works on."""
    agent, _ = await _agent(request, rt)

    def hold() -> None:
        with rt.engine.begin() as conn:
            tasks.renew(conn, task_id, agent["id"], _lease(rt))

    try:
        await run_in_threadpool(hold)
    except tasks.TaskGone as exc:
        raise ApiError(409, "task_gone", str(exc)) from None
    return {"status": "leased"}


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


@router.get("/tasks/{task_id}/upload")
async def upload_size(task_id: str, request: Request, rt: RuntimeDep) -> dict[str, int]:
    """How much of a task's upload the server already has (to resume after a broken connection)."""
    await _agent(request, rt)

    def size() -> int:
        with rt.engine.connect() as conn:
            return tasks.uploaded(conn, task_id)

    return {"size": await run_in_threadpool(size)}


@router.put("/tasks/{task_id}/upload")
async def upload(
    task_id: str, request: Request, rt: RuntimeDep, offset: Annotated[int, Query(ge=0, le=2**40)]
) -> dict[str, int]:
    """An agent uploads a chunk of what it read (sealed for the server), at the offset the server has."""
    agent, body = await _agent(request, rt)

    def store() -> int:
        with rt.engine.begin() as conn:
            return tasks.append(conn, task_id, agent["id"], offset, body, _lease(rt))

    try:
        return {"size": await run_in_threadpool(store)}
    except tasks.TaskGone as exc:
        raise ApiError(409, "task_gone", str(exc)) from None


class FinishIn(Strict):
    status: str = Field(pattern="^(uploaded|done|failed)$")
    result: dict[str, Any] | None = None


@router.post("/tasks/{task_id}/finish")
async def finish(task_id: str, request: Request, rt: RuntimeDep) -> dict[str, str]:
    """An agent reports a task done or failed; a finished upload is applied as one sync run."""
    agent, body = await _agent(request, rt)
    given = FinishIn.model_validate_json(body)

    def done() -> None:
        with rt.engine.begin() as conn:
            tasks.finish(conn, task_id, agent["id"], given.status, given.result)

    try:
        await run_in_threadpool(done)
    except tasks.TaskGone as exc:
        raise ApiError(409, "task_gone", str(exc)) from None
    return {"status": given.status}
