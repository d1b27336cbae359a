"""The native admin API under /api/v1: organizations, API keys, directories, sync runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from roster.api.admin_scim import ScimDirectoryIn
from roster.api.auth import PrincipalDep, RuntimeDep, check_org, owned_directory, require_admin, scope_org
from roster.api.errors import ApiError
from roster.api.models import Mapping_, Patch, Strict
from roster.api.pagination import check_cursor
from roster.api.sync_runner import SyncBusy
from roster.connectors.base import ConfigError
from roster.directories import (
    DirectorySpec,
    SecretRequired,
    create_directory,
    login_warnings,
    test_directory,
    update_directory_settings,
)
from roster.directories import delete_directory as remove_directory
from roster.events.payloads import directory_payload
from roster.store import jobs, repo
from roster.store.db import as_utc, iso
from roster.store.repo import Principal

router = APIRouter(prefix="/api/v1", tags=["admin"])


class OrganizationIn(Strict):
    name: str = Field(min_length=1, max_length=200, description="The organization's display name.")
    domain: str | None = Field(default=None, max_length=253, description="Its main e-mail domain.")


class ApiKeyIn(Strict):
    name: str = Field(default="api key", min_length=1, max_length=200)
    organization_id: str | None = Field(default=None, description="Scope; omit for an admin key.")


TEST_FIRST = "Test the connection first and store nothing when it fails (false: store it as given)."


class DirectoryIn(Strict):
    organization_id: str
    name: str = Field(min_length=1, max_length=200)
    test: bool = Field(
        default=True,
        description="Test the connection first and store nothing when it fails (false: store as given).",
    )
    type: Literal["ldap", "active_directory"]
    connection: Literal["direct", "agent"] = Field(
        default="direct", description="agent: read by the on-prem agent (no URL nor password here)."
    )
    url: str | None = Field(default=None, description="ldap://host[:port] or ldaps://host[:port]")
    bind_dn: str | None = Field(default=None, min_length=1)
    bind_password: str | None = Field(default=None, min_length=1, repr=False)
    search_paths: list[str] = Field(min_length=1, description="e.g. 'CN=Users, DC=domain, DC=local'")
    ca_file: str | None = None
    start_tls: bool = False
    insecure_skip_tls_verify: bool = Field(default=False, description="Tests only: no TLS verification.")
    mapping: Mapping_ | None = None
    member_range_size: int | None = Field(
        default=None, ge=1, le=100000, description="Read group members in ranges of this size (AD style)."
    )
    user_bind_template: str | None = Field(
        default=None, max_length=500, description="Login to bind name, e.g. '{login}@example.local'."
    )
    change_detection: Literal["auto", "dirsync", "usn", "syncrepl", "off"] = Field(
        default="auto", description="How incremental runs find changes (off: full runs only)."
    )
    near_real_time_seconds: int | None = Field(
        default=None, ge=2, le=86400, description="Continuous incremental runs this often (seconds)."
    )


class AzureDirectoryIn(Strict):
    """Microsoft Entra ID: a client secret, or certificate credentials (certificate and key PEM)."""

    organization_id: str
    name: str = Field(min_length=1, max_length=200)
    type: Literal["azure"]
    test: bool = Field(
        default=True,
        description="Test the connection first and store nothing when it fails (false: store as given).",
    )
    tenant_id: str = Field(min_length=1, description="The tenant's id (a GUID) or one of its domains.")
    client_id: str = Field(min_length=1, description="The app registration's application (client) id.")
    client_secret: str | None = Field(default=None, min_length=1, repr=False)
    certificate_pem: str | None = Field(default=None, description="Certificate credentials: the certificate.")
    private_key_pem: str | None = Field(default=None, min_length=1, repr=False)
    cloud: Literal["global", "usgov", "usgov-dod", "china"] = "global"
    login_url: str | None = None
    graph_url: str | None = None
    ca_file: str | None = None
    upn_as_email: bool = Field(
        default=False, description="No mail nor otherMails: use the UPN (not a guest's)."
    )
    mapping: Mapping_ | None = None
    near_real_time_seconds: int | None = Field(default=None, ge=2, le=86400)


class DirectoryPatch(Patch):
    NULLABLE = frozenset(
        [
            "ca_file",
            "certificate_pem",
            "graph_url",
            "login_url",
            "mapping",
            "member_range_size",
            "near_real_time_seconds",
            "user_bind_template",
        ]
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    url: str | None = None
    bind_dn: str | None = None
    bind_password: str | None = Field(default=None, min_length=1, repr=False)
    search_paths: list[str] | None = Field(default=None, min_length=1)
    ca_file: str | None = None
    start_tls: bool | None = None
    insecure_skip_tls_verify: bool | None = None
    mapping: Mapping_ | None = None
    member_range_size: int | None = Field(default=None, ge=1, le=100000)
    user_bind_template: str | None = Field(default=None, max_length=500)
    change_detection: Literal["auto", "dirsync", "usn", "syncrepl", "off"] | None = None
    near_real_time_seconds: int | None = Field(default=None, ge=2, le=86400)
    # Microsoft Entra ID
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = Field(default=None, min_length=1, repr=False)
    certificate_pem: str | None = None
    private_key_pem: str | None = Field(default=None, min_length=1, repr=False)
    cloud: Literal["global", "usgov", "usgov-dod", "china"] | None = None
    login_url: str | None = None
    graph_url: str | None = None
    upn_as_email: bool | None = None


class SyncIn(Strict):
    dry_run: bool = False
    force: bool = Field(default=False, description="Apply even if the deletion guard objects.")
    full: bool = Field(default=False, description="Read everything, even if an incremental run is possible.")
    wait: bool = Field(default=False, description="Answer when the run has finished.")


def org_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "organization",
        "id": row["id"],
        "name": row["name"],
        "domain": row["domain"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def directory_view(row: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    out = directory_payload(row, metadata)
    out["state"] = row["state"]
    out["config"] = {k: v for k, v in row["config"].items()}
    out["has_bind_password"] = bool(row["secret"])
    out["last_sync_at"] = iso(row["last_sync_at"])
    out["warnings"] = login_warnings(row["config"])
    return out


def plan_lists(conn: Any, run_id: str) -> dict[str, Any]:
    """The reference guide's two lists: new accounts since the last sync, and accounts deleted there."""
    import json

    entries = repo.run_log(conn, run_id, 100_000)
    new = [
        json.loads(e["detail"]) | {"idp_id": e["external_id"]}
        for e in entries
        if e["change"] == "user_created"
    ]
    gone = [
        {"id": e["object_id"], "idp_id": e["external_id"]} for e in entries if e["change"] == "user_removed"
    ]
    return {"new_accounts_since_last_sync": new, "deleted_from_directory": gone}


def run_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "sync_run",
        **{
            k: row[k]
            for k in (
                "id",
                "directory_id",
                "organization_id",
                "trigger",
                "kind",
                "status",
                "counts",
                "error",
                "error_reason",
            )
        },
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
    }


@router.post("/organizations", status_code=201)
def create_organization(body: OrganizationIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Create an organization (admin key only)."""
    require_admin(who)
    with rt.engine.begin() as conn:
        return org_view(repo.create_organization(conn, body.name, body.domain))


@router.get("/organizations")
def list_organizations(rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Every organization (admin key) or the key's own."""
    with rt.engine.connect() as conn:
        rows = [r for r in repo.list_organizations(conn) if who.can_see(r["id"])]
    return {"object": "list", "data": [org_view(r) for r in rows]}


@router.get("/organizations/{org_id}")
def get_organization(org_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """One organization."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.connect() as conn:
        return org_view(repo.get_organization(conn, org_id))


@router.post("/api_keys", status_code=201)
def create_api_key(body: ApiKeyIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Create an API key for an organization, or an admin key. The secret is shown once and stored
    hashed."""
    require_admin(who)
    with rt.engine.begin() as conn:
        row, secret = repo.create_api_key(conn, body.organization_id, body.name)
    return {
        "object": "api_key",
        "id": row["id"],
        "organization_id": row["organization_id"],
        "name": row["name"],
        "secret": secret,
        "created_at": iso(row["created_at"]),
    }


# server file paths, the TLS opt-out, and hosts Roster would send requests to (an organization picks a cloud)
OPERATOR_FIELDS = ("ca_file", "insecure_skip_tls_verify", "login_url", "graph_url")


def _operator_only(who: Principal, values: dict[str, Any]) -> None:
    """Server file paths and the TLS opt-out are the operator's (admin key), not a tenant's."""
    used = [k for k in OPERATOR_FIELDS if values.get(k)]
    if used and not who.is_admin:
        raise ApiError(403, "forbidden", f"{used[0]}: only an admin API key may set this")


@router.post("/directories", status_code=201)
def create_directory_(
    body: Annotated[DirectoryIn | AzureDirectoryIn | ScimDirectoryIn, Field(discriminator="type")],
    rt: RuntimeDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    """Connect a directory: LDAP or Active Directory (direct or through the on-prem agent), Entra ID,
    or SCIM (the answer carries the SCIM base URL and a token, shown once). Settings are checked
    before anything is stored; a URL an organization key gives must be in
    ROSTER_DIRECTORY_ALLOWED_NETWORKS."""
    check_org(who, body.organization_id, "organization", body.organization_id)
    _operator_only(who, body.model_dump())
    secrets = {"bind_password", "client_secret", "private_key_pem"}
    settings = body.model_dump(exclude={"organization_id", "name", "type", "test", *secrets})
    settings["mapping"] = body.mapping.model_dump() if body.mapping else None
    if isinstance(body, ScimDirectoryIn):
        secret = None
    elif isinstance(body, AzureDirectoryIn):
        if body.client_secret and body.certificate_pem:
            raise ApiError(422, "invalid", "client_secret: give a client secret or a certificate, not both")
        secret = body.private_key_pem if body.certificate_pem else body.client_secret
    else:
        secret = body.bind_password
    spec = DirectorySpec(body.organization_id, body.name, body.type, settings, secret)
    row = create_directory(rt, spec, tenant=not who.is_admin, test=getattr(body, "test", False))
    shown_once = {k: row[k] for k in ("scim_base_url", "scim_token") if k in row}
    return directory_view(row) | shown_once


@router.get("/directories")
def list_directories(rt: RuntimeDep, who: PrincipalDep, organization_id: str | None = None) -> dict[str, Any]:
    """The directories an API key can see, with their state."""
    org = scope_org(who, organization_id)
    with rt.engine.connect() as conn:
        rows = repo.list_directories(conn, org)
    return {"object": "list", "data": [directory_view(r) for r in rows]}


@router.get("/directories/{directory_id}")
def get_directory(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """One directory with its settings (never its secret), state and counts."""
    row = owned_directory(rt, who, directory_id)
    with rt.engine.connect() as conn:
        return directory_view(row, repo.directory_metadata(conn, directory_id))


@router.patch("/directories/{directory_id}")
def update_directory(
    directory_id: str, body: DirectoryPatch, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Change a directory's settings; changing where it connects needs its secret again. The next run
    reads everything when paths, server or mapping change."""
    row = owned_directory(rt, who, directory_id)
    changes = body.model_dump(exclude_unset=True)
    _operator_only(who, changes)
    try:
        return directory_view(update_directory_settings(rt, row, changes, tenant=not who.is_admin))
    except SecretRequired as exc:
        raise ApiError(
            422, "invalid_request_parameters", str(exc), [{"field": exc.field, "code": "required"}]
        ) from None


@router.delete("/directories/{directory_id}", status_code=204)
def delete_directory(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> None:
    """Delete a directory and its cached users and groups; accounts it linked become local. Emits
    `dsync.deleted`."""
    owned_directory(rt, who, directory_id)
    with rt.engine.begin() as conn:
        remove_directory(conn, directory_id)


@router.post("/directories/{directory_id}/test")
def test_connection(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Connect, bind and look up each search path now, waiting ROSTER_DIRECTORY_TEST_TIMEOUT_SECONDS at
    most per step. An organization key gets one answer for every failure below LDAP."""
    owned_directory(rt, who, directory_id)
    report = test_directory(rt, directory_id, tenant=not who.is_admin)
    return {
        "ok": report.ok,
        "server": report.server,
        "detail": report.detail,
        "paths": [{"path": p.path, "ok": p.ok, "detail": p.detail} for p in report.paths],
        "warnings": login_warnings(owned_directory(rt, who, directory_id)["config"]),
    }


@router.post("/directories/{directory_id}/sync_runs", status_code=202)
def trigger_sync(
    directory_id: str, rt: RuntimeDep, who: PrincipalDep, request: Request, body: SyncIn | None = None
) -> dict[str, Any]:
    """Queue a sync run (full, incremental, dry run, or forced past the deletion guard). With `wait:
    true` the answer is the finished run, or the queued job after ROSTER_SYNC_WAIT_SECONDS."""
    owned_directory(rt, who, directory_id)
    body = body or SyncIn()
    try:
        job_id = request.app.state.runner.submit(
            directory_id, trigger="api", dry_run=body.dry_run, full=body.full, force=body.force
        )
    except SyncBusy as exc:
        raise ApiError(409, "directory_disabled", str(exc)) from None
    if not body.wait:
        return {"status": "queued", "job_id": job_id}
    try:
        job = request.app.state.runner.wait(job_id, rt.settings.sync_wait_seconds)
    except TimeoutError:
        with rt.engine.connect() as conn:
            state = (jobs.get(conn, job_id) or {}).get("status", "queued")
        return {
            "status": state,
            "job_id": job_id,
            "message": f"not finished after {rt.settings.sync_wait_seconds:g} s (ROSTER_SYNC_WAIT_SECONDS); "
            f"its run appears in GET /api/v1/directories/{directory_id}/sync_runs",
        }
    if not job.get("run_id"):
        raise ApiError(409, "job_failed", f"job {job_id} failed before its run started: {job.get('error')}")
    with rt.engine.connect() as conn:
        return {**run_view(repo.get_run(conn, job["run_id"])), **plan_lists(conn, job["run_id"])}


@router.get("/directories/{directory_id}/sync_runs")
def list_runs(
    directory_id: str, rt: RuntimeDep, who: PrincipalDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    """A directory's sync runs, newest first."""
    owned_directory(rt, who, directory_id)
    with rt.engine.connect() as conn:
        rows = repo.list_runs(conn, directory_id, limit)
    return {"object": "list", "data": [run_view(r) for r in rows]}


@router.get("/sync_runs/{run_id}")
def get_run(
    run_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    log_limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    log_after: str | None = None,
) -> dict[str, Any]:
    """One sync run with its counts and its change log (paged with `log_after`)."""
    check_cursor("log_after", log_after)
    with rt.engine.connect() as conn:
        row = repo.get_run(conn, run_id)
        check_org(who, row["organization_id"], "sync run", run_id)
        entries = repo.run_log(conn, run_id, log_limit, log_after)
    import json

    log = [
        {
            "id": e["id"],
            "change": e["change"],
            "object_type": e["object_type"],
            "object_id": e["object_id"],
            "external_id": e["external_id"],
            "detail": json.loads(e["detail"]),
            "created_at": iso(e["created_at"]),
        }
        for e in entries
    ]
    with rt.engine.connect() as conn:
        lists = plan_lists(conn, run_id)
    return {
        **run_view(row),
        **lists,
        "log": log,
        "log_after": log[-1]["id"] if len(log) == log_limit else None,
    }


_ = ConfigError  # re-exported errors are handled in roster.api.errors


@router.post("/sync_runs/{run_id}/approve", status_code=202)
def approve_run(run_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Apply exactly what a held run would do (re-planned if the directory changed since)."""
    from roster.sync.approvals import approve

    with rt.engine.begin() as conn:
        run = repo.get_run(conn, run_id)
        check_org(who, run["organization_id"], "sync run", run_id)
        job_id = approve(conn, run_id)
    return {"status": "queued", "job_id": job_id}


@router.post("/sync_runs/{run_id}/reject")
def reject_run(run_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Reject a run the deletion guard held: nothing of it is applied."""
    from roster.sync.approvals import reject

    with rt.engine.begin() as conn:
        run = repo.get_run(conn, run_id)
        check_org(who, run["organization_id"], "sync run", run_id)
        reject(conn, run_id)
        return run_view(repo.get_run(conn, run_id))


@router.post("/sync_runs/{run_id}/cancel")
def cancel_run(run_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Mark a running run failed and release its directory (its process may have died); a live
    holder applies nothing. For a run stuck as ``running`` after a crash, or to stop one now."""
    with rt.engine.begin() as conn:
        run = repo.get_run(conn, run_id)
        check_org(who, run["organization_id"], "sync run", run_id)
        try:
            jobs.cancel_run(conn, run_id)
        except jobs.RunNotRunning as exc:
            raise ApiError(409, "not_running", str(exc)) from None
        return run_view(repo.get_run(conn, run_id))


@router.get("/sync_log")
def sync_log_entries(
    rt: RuntimeDep,
    who: PrincipalDep,
    directory_id: str,
    run_id: str | None = None,
    change: str | None = None,
    object_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_dry_runs: bool = False,
) -> dict[str, Any]:
    """Every change of every run of a directory, filtered by run, kind, object and time. What dry
    runs planned is left out unless ``include_dry_runs`` is set or ``run_id`` names one."""
    import json
    from datetime import datetime

    import sqlalchemy as sa

    from roster.store.schema import sync_log, sync_runs

    owned_directory(rt, who, directory_id)
    q = sa.select(sync_log).where(sync_log.c.directory_id == directory_id)
    if run_id:
        q = q.where(sync_log.c.run_id == run_id)
    elif not include_dry_runs:
        dry = sa.select(sync_runs.c.id).where(
            sync_runs.c.directory_id == directory_id, sync_runs.c.kind == "dry_run"
        )
        q = q.where(sync_log.c.run_id.not_in(dry))
    if change:
        q = q.where(sync_log.c.change == change)
    if object_id:
        q = q.where(sa.or_(sync_log.c.object_id == object_id, sync_log.c.external_id == object_id))
    for name, value, op in (("since", since, "ge"), ("until", until, "lt")):
        if value:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(
                    422, "invalid_request_parameters", f"{name}: {value!r} is not an ISO 8601 time"
                ) from None
            utc = as_utc(when)  # an offset is honoured, a time without one is UTC (as stored)
            q = q.where(sync_log.c.created_at >= utc if op == "ge" else sync_log.c.created_at < utc)
    check_cursor("after", after)
    if after:
        q = q.where(sync_log.c.id > after)
    with rt.engine.connect() as conn:
        rows = conn.execute(q.order_by(sync_log.c.id).limit(limit)).mappings().all()
    data = [
        {
            "id": r["id"],
            "run_id": r["run_id"],
            "change": r["change"],
            "object_type": r["object_type"],
            "object_id": r["object_id"],
            "external_id": r["external_id"],
            "detail": json.loads(r["detail"]),
            "created_at": iso(r["created_at"]),
        }
        for r in rows
    ]
    return {"object": "list", "data": data, "after": data[-1]["id"] if len(data) == limit else None}
