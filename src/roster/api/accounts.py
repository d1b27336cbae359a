"""Accounts, application groups, sharing and login: /api/v1 routes for the host application."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import EmailStr, Field

from roster.accounts import service
from roster.accounts.login import login
from roster.api.auth import PrincipalDep, RuntimeDep, check_org
from roster.api.models import Patch, Strict
from roster.sso.redirects import check_redirect_uris
from roster.store import repo
from roster.store.schema import accounts, app_groups, organizations
from roster.sync.schedule import parse_time, zone

router = APIRouter(prefix="/api/v1", tags=["accounts"])


class AccountIn(Strict):
    email: EmailStr
    name: str | None = Field(default=None, max_length=400)
    phone: str | None = Field(default=None, max_length=100)
    role: Literal["admin", "member"] = "member"
    password: str | None = Field(default=None, min_length=8, max_length=1000, repr=False)
    data: dict[str, Any] = Field(default_factory=dict, description="The host application's own fields.")


class AccountPatch(Patch):
    NULLABLE = frozenset(["name", "phone"])
    email: EmailStr | None = None
    name: str | None = Field(default=None, max_length=400)
    phone: str | None = Field(default=None, max_length=100)
    role: Literal["admin", "member"] | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1000, repr=False)
    disabled: bool | None = None
    data: dict[str, Any] | None = None


class GroupIn(Strict):
    name: str = Field(min_length=1, max_length=400)
    description: str | None = None


class MemberIn(Strict):
    member_id: str = Field(description="An account id or a group id")


class GrantIn(Strict):
    resource_id: str = Field(min_length=1, max_length=255)
    principal_id: str = Field(description="An account id or a group id")


class OwnerIn(Strict):
    owner_account_id: str


class OrganizationPatch(Patch):
    NULLABLE = frozenset(["guard_max_share", "guard_min_count", "incremental_minutes", "sso_redirect_uris"])
    group_removal_policy: Literal["remove", "keep_inactive"] | None = None
    timezone: str | None = Field(default=None, description="e.g. Europe/Prague; daily syncs run in it")
    daily_sync_time: str | None = Field(default=None, description="HH:MM local time of the daily full sync")
    incremental_minutes: int | None = Field(default=None, ge=1, le=1440, description="0/None: off")
    guard_max_share: float | None = Field(default=None, gt=0, le=1)
    guard_min_count: int | None = Field(default=None, ge=1, le=1_000_000_000)
    sso_redirect_uris: list[str] | None = Field(
        default=None, max_length=50, description="Where single sign-on may send the browser back to."
    )


class LoginIn(Strict):
    organization_id: str
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(max_length=1000, repr=False)
    source_address: str | None = Field(
        default=None, max_length=64, description="The end user's address, for rate limiting."
    )


def _org_of(rt: Any, table: sa.Table, row_id: str, what: str) -> str:
    with rt.engine.connect() as conn:
        org = conn.execute(sa.select(table.c.organization_id).where(table.c.id == row_id)).scalar()
    if org is None:
        raise repo.NotFound(f"{what} {row_id!r} not found")
    return str(org)


@router.patch("/organizations/{org_id}")
def update_organization(
    org_id: str, body: OrganizationPatch, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Change an organization's name, domain or settings (an organization key may change only its own)."""
    check_org(who, org_id, "organization", org_id)
    values = body.model_dump(exclude_unset=True)
    if values.get("timezone") is not None:
        zone(values["timezone"])
    if values.get("daily_sync_time") is not None:
        parse_time(values["daily_sync_time"])
    if values.get("sso_redirect_uris") is not None:
        values["sso_redirect_uris"] = check_redirect_uris(values["sso_redirect_uris"])
    with rt.engine.begin() as conn:
        repo.get_organization(conn, org_id)
        if values:
            conn.execute(sa.update(organizations).where(organizations.c.id == org_id).values(**values))
        row = repo.get_organization(conn, org_id)
    keys = (
        "group_removal_policy",
        "timezone",
        "daily_sync_time",
        "incremental_minutes",
        "guard_max_share",
        "guard_min_count",
        "sso_redirect_uris",
    )
    return {"object": "organization", "id": row["id"], "name": row["name"], **{k: row[k] for k in keys}}


@router.post("/organizations/{org_id}/accounts", status_code=201)
def create_account(org_id: str, body: AccountIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Create a local account in the organization; an e-mail that matches a directory user links it to
    the directory."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.begin() as conn:
        row = service.create_account(
            conn, org_id, body.email, body.name, body.phone, body.role, body.password, body.data
        )
    return service.account_view(row)


@router.get("/organizations/{org_id}/accounts")
def list_accounts(
    org_id: str,
    rt: RuntimeDep,
    who: PrincipalDep,
    email: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> dict[str, Any]:
    """The organization's accounts, newest first, with cursor pagination (`after`, `before`, `limit`)."""
    check_org(who, org_id, "organization", org_id)
    q = sa.select(accounts).where(accounts.c.organization_id == org_id).order_by(accounts.c.id).limit(limit)
    if email:
        q = q.where(accounts.c.email_lower == email.strip().lower())
    if after:
        q = q.where(accounts.c.id > after)
    with rt.engine.connect() as conn:
        rows = [service.account_view(dict(r)) for r in conn.execute(q).mappings()]
    return {"object": "list", "data": rows, "after": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/accounts/{account_id}")
def get_account(account_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """One account: its fields, whether the directory manages it, and why it is disabled if it is."""
    org = _org_of(rt, accounts, account_id, "account")
    check_org(who, org, "account", account_id)
    with rt.engine.connect() as conn:
        row = service.get_account(conn, account_id, org)
        view = service.account_view(row, service.groups_of(conn, org, account_id))
        view["owned_resources"] = service.owned_by(conn, org, account_id)
    return view


@router.patch("/accounts/{account_id}")
def update_account(account_id: str, body: AccountPatch, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Change an account. Fields the directory manages are read-only (409); `null` is refused where a
    field cannot be empty."""
    org = _org_of(rt, accounts, account_id, "account")
    check_org(who, org, "account", account_id)
    with rt.engine.begin() as conn:
        row = service.update_account(conn, account_id, org, body.model_dump(exclude_unset=True))
    return service.account_view(row)


@router.get("/accounts/{account_id}/groups")
def account_groups(
    account_id: str, rt: RuntimeDep, who: PrincipalDep, effective: bool = True
) -> dict[str, Any]:
    """The groups the account belongs to: directory groups (read-only) and local groups."""
    org = _org_of(rt, accounts, account_id, "account")
    check_org(who, org, "account", account_id)
    with rt.engine.connect() as conn:
        return {"object": "list", "data": service.groups_of(conn, org, account_id, effective)}


@router.post("/organizations/{org_id}/groups", status_code=201)
def create_group(org_id: str, body: GroupIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Create a local group beside the directory's groups."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.begin() as conn:
        return service.group_view(service.create_local_group(conn, org_id, body.name, body.description))


@router.get("/organizations/{org_id}/groups")
def list_groups(
    org_id: str, rt: RuntimeDep, who: PrincipalDep, source: Literal["local", "directory"] | None = None
) -> dict[str, Any]:
    """The organization's groups, directory and local, with cursor pagination."""
    check_org(who, org_id, "organization", org_id)
    q = sa.select(app_groups).where(app_groups.c.organization_id == org_id).order_by(app_groups.c.id)
    if source:
        q = q.where(app_groups.c.source == source)
    with rt.engine.connect() as conn:
        return {"object": "list", "data": [service.group_view(dict(r)) for r in conn.execute(q).mappings()]}


@router.get("/groups/{group_id}/members")
def group_members(
    group_id: str, rt: RuntimeDep, who: PrincipalDep, effective: bool = False
) -> dict[str, Any]:
    """The accounts in a group (nested directory groups resolved)."""
    org = _org_of(rt, app_groups, group_id, "group")
    check_org(who, org, "group", group_id)
    with rt.engine.connect() as conn:
        return {
            "object": "list",
            "effective": effective,
            "data": service.members(conn, org, group_id, effective),
        }


@router.post("/groups/{group_id}/members", status_code=204)
def add_member(group_id: str, body: MemberIn, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Add an account to a local group (directory groups follow the directory: 409)."""
    org = _org_of(rt, app_groups, group_id, "group")
    check_org(who, org, "group", group_id)
    with rt.engine.begin() as conn:
        service.add_member(conn, org, group_id, body.member_id)
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{member_id}", status_code=204)
def remove_member(group_id: str, member_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Remove an account from a local group."""
    org = _org_of(rt, app_groups, group_id, "group")
    check_org(who, org, "group", group_id)
    with rt.engine.begin() as conn:
        service.remove_member(conn, org, group_id, member_id)
    return Response(status_code=204)


@router.delete("/groups/{group_id}", status_code=204)
def delete_group(group_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Delete a local group (a directory group goes when the directory removes it: 409)."""
    org = _org_of(rt, app_groups, group_id, "group")
    check_org(who, org, "group", group_id)
    with rt.engine.begin() as conn:
        service.delete_group(conn, org, group_id)
    return Response(status_code=204)


@router.post("/organizations/{org_id}/grants", status_code=204)
def grant(org_id: str, body: GrantIn, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Give a group or an account access to a resource of the organization."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.begin() as conn:
        service.grant(conn, org_id, body.resource_id, body.principal_id)
    return Response(status_code=204)


@router.delete("/organizations/{org_id}/grants", status_code=204)
def revoke(org_id: str, resource_id: str, principal_id: str, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Take back access given with POST .../grants."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.begin() as conn:
        service.revoke(conn, org_id, resource_id, principal_id)
    return Response(status_code=204)


@router.put("/organizations/{org_id}/resources/{resource_id}", status_code=204)
def set_owner(org_id: str, resource_id: str, body: OwnerIn, rt: RuntimeDep, who: PrincipalDep) -> Response:
    """Set the account that owns a resource."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.begin() as conn:
        service.set_owner(conn, org_id, resource_id, body.owner_account_id)
    return Response(status_code=204)


@router.get("/organizations/{org_id}/access")
def access(
    org_id: str, account_id: str, resource_id: str, rt: RuntimeDep, who: PrincipalDep
) -> dict[str, Any]:
    """Whether an account may access a resource (as owner, directly, or through a group)."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.connect() as conn:
        return {
            "account_id": account_id,
            "resource_id": resource_id,
            **service.can_access(conn, org_id, account_id, resource_id),
        }


_STATUS = {"ok": 200, "too_many_attempts": 429, "directory_unavailable": 503, "directory_insecure": 503}


@router.post("/auth/login")
def auth_login(body: LoginIn, rt: RuntimeDep, who: PrincipalDep, request: Request) -> JSONResponse:
    """Sign an account in: linked accounts against the directory (lockout, disablement and expiry
    honoured at once), local accounts against their password. One answer for a wrong password
    and an unknown address; throttled per account and per address (429)."""
    check_org(who, body.organization_id, "organization", body.organization_id)
    address = body.source_address or (request.client.host if request.client else None)
    result = login(rt, body.organization_id, body.email, body.password, address)
    if result.ok:
        return JSONResponse({"object": "login", "account": result.account})
    headers = {"Retry-After": str(result.retry_after)} if result.retry_after else None
    return JSONResponse(
        {"code": result.reason, "message": _MESSAGES[result.reason]},
        status_code=_STATUS.get(result.reason, 401),
        headers=headers,
    )


_MESSAGES = {
    "invalid_credentials": "e-mail or password is wrong",
    "locked": "the account is locked in the directory",
    "disabled": "the account is disabled",
    "password_expired": "the password has expired or must be changed in the directory",
    "too_many_attempts": "too many failed attempts; try again later",
    "directory_unavailable": "the directory cannot be reached; try again later",
    "directory_insecure": "sign-in through this directory needs LDAPS or StartTLS (the password is never "
    "sent unencrypted); an administrator must change the directory's connection",
}
