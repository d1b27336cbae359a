"""The native admin API under /api/v1: organizations, API keys, directories, sync runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import Field

from roster.api.admin_scim import ScimDirectoryIn
from roster.api.auth import PrincipalDep, RuntimeDep, check_org, owned_directory, require_admin, scope_org
from roster.api.errors import ApiError
from roster.api.models import Mapping_, Patch, Strict
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
from roster.store import repo
from roster.store.db import iso
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
    test: bool = Field(
        default=True,
        description="When the server, the secret or the search paths change: test the new settings first and "
        "change nothing when they fail (false: store as given).",
    )


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
    test = changes.pop("test", True)
    _operator_only(who, changes)
    try:
        return directory_view(update_directory_settings(rt, row, changes, tenant=not who.is_admin, test=test))
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


_ = ConfigError  # re-exported errors are handled in roster.api.errors
