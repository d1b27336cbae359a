"""The connector of a directory reached through its on-prem agent: each read is a task the agent
runs next to the directory, and what it uploads is the batch a direct read would have returned.
So scheduled, manual and near-real-time runs, the ingest and the access check work unchanged.

The server never connects to the directory and never holds its bind password. The task queue is
this connector's only I/O (``roster.agent.tasks``), behind the small ``Queue`` below.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from roster.agent import tasks
from roster.agent.registry import LIVE, SILENT
from roster.agent.sealing import seal
from roster.connectors.base import ConnectionReport, ConnectorError, FailureReason, PathCheck, Progress
from roster.domain.delta import Delta
from roster.domain.records import Snapshot
from roster.store.db import utcnow
from roster.store.schema_access import agents
from roster.wire import WireError, decode_batch

MAX_UPLOAD = 2 * 1024**3  # a decompressed batch larger than this is refused


class AgentConnector:
    def __init__(self, engine: Engine, directory: Mapping[str, Any], timeout: timedelta, poll: float = 0.2):
        self.engine, self.directory, self.timeout, self.poll = engine, directory, timeout, poll

    def _live_agent(self, within: timedelta) -> Any:
        """The directory's active agent heard from most recently within ``within`` (id, key), or None."""
        a = agents
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(a.c.id, a.c.public_key_pem)
                .where(
                    a.c.directory_id == self.directory["id"],
                    a.c.status == "active",
                    a.c.last_seen_at > utcnow() - within,
                )
                .order_by(a.c.last_seen_at.desc())
                .limit(1)
            ).first()

    def _run(
        self, kind: str, payload: dict[str, Any], timeout: timedelta
    ) -> tuple[str, dict[str, Any] | None]:
        if self._live_agent(SILENT) is None:
            raise ConnectorError(
                FailureReason.UNREACHABLE,
                f"no agent of directory {self.directory['id']} is responding "
                "(enrol one, or check that it runs)",
            )
        settings = {"type": self.directory["type"], "config": dict(self.directory["config"])}
        with self.engine.begin() as conn:
            task_id = tasks.enqueue(conn, self.directory["id"], kind, {"directory": settings, **payload})
        deadline = time.monotonic() + timeout.total_seconds()
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                status, result = tasks.state(conn, task_id)
            if status in ("uploaded", "done", "failed"):
                return self._outcome(task_id, status, result)
            time.sleep(self.poll)
        with self.engine.begin() as conn:
            tasks.abandon(conn, task_id, "the server stopped waiting")
        raise ConnectorError(
            FailureReason.TIMEOUT, f"the agent did not finish the {kind} task within {timeout}"
        )

    def _outcome(
        self, task_id: str, status: str, result: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        if status == "failed":
            error = (result or {}).get("error") or "the agent reported a failure"
            reason = (result or {}).get("reason") or FailureReason.SEARCH_FAILED
            raise ConnectorError(FailureReason(reason), f"through the agent: {error}")
        return task_id, result

    def _batch(self, task_id: str) -> Snapshot | Delta:
        with self.engine.begin() as conn:
            packed = tasks.take_upload(conn, task_id)
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip, never inflated past MAX_UPLOAD
        try:
            data = inflate.decompress(packed, MAX_UPLOAD + 1)
        except zlib.error as exc:
            raise ConnectorError(
                FailureReason.SEARCH_FAILED, f"the agent's upload is damaged: {exc}"
            ) from None
        if len(data) > MAX_UPLOAD or inflate.unconsumed_tail:
            raise ConnectorError(FailureReason.SEARCH_FAILED, "the agent's upload is too large")
        if not inflate.eof:
            raise ConnectorError(FailureReason.SEARCH_FAILED, "the agent's upload is cut short")
        try:
            return decode_batch(data)
        except WireError as exc:
            raise ConnectorError(
                FailureReason.SEARCH_FAILED, f"the agent's upload is refused: {exc}"
            ) from None

    def snapshot(
        self, progress: Progress | None = None, previous: Mapping[str, str] | None = None
    ) -> Snapshot:
        task_id, _ = self._run("full", {"previous": dict(previous or {})}, self.timeout)
        batch = self._batch(task_id)
        if not isinstance(batch, Snapshot):
            raise ConnectorError(FailureReason.SEARCH_FAILED, "the agent uploaded a delta for a full read")
        if progress is not None:
            progress(len(batch.users) + len(batch.groups) + len(batch.unchanged))
        return batch

    def changes(self, cursor: str, progress: Progress | None = None) -> Delta | None:
        task_id, result = self._run("incremental", {"cursor": cursor}, self.timeout)
        if (result or {}).get("full_needed"):
            with self.engine.begin() as conn:
                tasks.take_upload(conn, task_id)
            return None
        batch = self._batch(task_id)
        if not isinstance(batch, Delta):
            raise ConnectorError(
                FailureReason.SEARCH_FAILED, "the agent uploaded a snapshot for an incremental read"
            )
        return batch

    def verify_password(self, name: str, password: str, wait: float = 10.0) -> tuple[str, str]:
        """(reason, detail) of a bind as ``name`` done by one healthy agent: the password is sealed
        to that agent's key, never stored readable, never given to another agent."""
        chosen = self._live_agent(LIVE)
        if chosen is None:
            return "unreachable", "no agent of this directory is responding"
        settings = {"type": self.directory["type"], "config": dict(self.directory["config"])}
        payload = {"directory": settings, "name": name, "sealed": seal(chosen.public_key_pem, password)}
        with self.engine.begin() as conn:
            task_id = tasks.enqueue(conn, self.directory["id"], "login", payload, agent_id=chosen.id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                status, result = tasks.state(conn, task_id)
            if status in ("done", "failed"):
                found = result or {}
                return str(found.get("reason", "error")), str(found.get("detail") or found.get("error") or "")
            time.sleep(0.05)
        with self.engine.begin() as conn:
            tasks.abandon(conn, task_id, "the login was not answered in time")
        return "timeout", "the agent did not answer in time"

    def test(self) -> ConnectionReport:
        try:
            _, result = self._run("test", {}, min(self.timeout, timedelta(seconds=60)))
        except ConnectorError as exc:
            return ConnectionReport(False, "agent", str(exc))
        report = result or {}
        paths = tuple(PathCheck(p["path"], bool(p["ok"]), p["detail"]) for p in report.get("paths", []))
        return ConnectionReport(
            bool(report.get("ok")), str(report.get("server", "")), str(report.get("detail", "")), paths
        )
