"""Directory alerts, disabling and enabling, the mail outbox, and e-mailed action links."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from roster.accounts import lifecycle
from roster.api.auth import PrincipalDep, RuntimeDep, check_org
from roster.api.models import Strict
from roster.notify.mail import readable, redact_links
from roster.runtime import Runtime
from roster.store import repo
from roster.store.db import iso
from roster.store.schema import mail_outbox
from roster.sync.access_check import check_access

router = APIRouter(prefix="/api/v1", tags=["directory lifecycle"])


class AlertsIn(Strict):
    notify_only_selected: bool
    recipients: list[str] = Field(default_factory=list, description="Account ids (admins) to alert")


class ActionIn(Strict):
    password: str | None = Field(default=None, min_length=8, max_length=1000, repr=False)


def _directory(rt: Any, who: Any, directory_id: str) -> dict[str, Any]:
    with rt.engine.connect() as conn:
        row = repo.get_directory(conn, directory_id)
    check_org(who, row["organization_id"], "directory", directory_id)
    return row


@router.put("/organizations/{org_id}/alerts")
def set_alerts(org_id: str, body: AlertsIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Who gets the organization's e-mail alerts (outages, held runs, failing webhooks)."""
    check_org(who, org_id, "organization", org_id)
    with rt.engine.begin() as conn:
        warnings = lifecycle.set_alerts(conn, org_id, body.notify_only_selected, body.recipients)
        people = lifecycle.recipients(conn, org_id)
    return {
        "notify_only_selected": body.notify_only_selected,
        "recipients": [p["id"] for p in people],
        "warnings": warnings,
    }


@router.post("/directories/{directory_id}/disable", status_code=202)
def disable(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Ask to disable a directory: each admin gets an e-mail with a confirmation link; nothing changes
    until one is used."""
    _directory(rt, who, directory_id)
    with rt.engine.begin() as conn:
        sent = lifecycle.request_disable(conn, rt.settings, directory_id)
    return {
        "status": "confirmation_sent",
        "admins": sent,
        "detail": "nothing changes until an admin opens the confirmation link",
    }


@router.post("/directories/{directory_id}/enable")
def enable(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Enable a disabled directory again; accounts it linked before are linked again."""
    _directory(rt, who, directory_id)
    with rt.engine.begin() as conn:
        row = lifecycle.enable(conn, directory_id)
    return {"id": row["id"], "state": row["state"], "detail": "the next sync links accounts again"}


@router.post("/directories/{directory_id}/check")
def check(directory_id: str, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """Run the directory's access check now (connect and bind) and record the result."""
    _directory(rt, who, directory_id)
    ok = check_access(rt, directory_id)
    row = _directory(rt, who, directory_id)
    return {"ok": ok, "checked_at": iso(row["last_check_at"]), "error": row["last_check_error"]}


@router.get("/organizations/{org_id}/mail")
def mail(org_id: str, rt: RuntimeDep, who: PrincipalDep, kind: str | None = None) -> dict[str, Any]:
    """The organization's mail outbox: what was sent or waits to be sent. With SMTP configured, links
    are shown cut."""
    check_org(who, org_id, "organization", org_id)
    q = sa.select(mail_outbox).where(mail_outbox.c.organization_id == org_id).order_by(mail_outbox.c.id)
    if kind:
        q = q.where(mail_outbox.c.kind == kind)
    with rt.engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return {
        "object": "list",
        "data": [
            {
                "id": r["id"],
                "to": r["recipient"],
                "subject": r["subject"],
                "body": redact_links(readable(r["body"], None))
                if rt.settings.smtp_host
                else readable(r["body"], rt.box),
                "kind": r["kind"],
                "created_at": iso(r["created_at"]),
                "sent_at": iso(r["sent_at"]),
                "error": r["error"],
            }
            for r in rows
        ],
    }


def _shown(body: str, rt: Runtime) -> str:
    """With SMTP configured, a link belongs to its recipient's mailbox, not to API key holders;
    without it the outbox is how an admin reads the mail."""
    return redact_links(readable(body, None)) if rt.settings.smtp_host else readable(body, rt.box)


_LINK_STATUS = {"link_invalid": 404, "link_used": 410, "link_expired": 410}


@router.get("/actions/{token}")
def describe_action(token: str, rt: RuntimeDep) -> JSONResponse:
    """What an e-mailed link does; opening it this way changes nothing. No API key: the link is the key."""
    try:
        with rt.engine.connect() as conn:
            action = lifecycle.look_up(conn, token)
    except lifecycle.LinkError as exc:
        return JSONResponse({"code": exc.code, "message": str(exc)}, status_code=_LINK_STATUS[exc.code])
    return JSONResponse(
        {
            "kind": action["kind"],
            "expires_at": iso(action["expires_at"]),
            "needs_password": action["kind"] != "confirm_disable",
        }
    )


@router.post("/actions/{token}")
def perform_action(
    token: str, rt: RuntimeDep, request: Request, body: ActionIn | None = None
) -> JSONResponse:
    """Use an e-mailed link (recover access, confirm a disable, set a password). A link works once,
    until it expires."""
    body = body or ActionIn()
    try:
        with rt.engine.begin() as conn:
            result = lifecycle.perform(conn, rt.settings, token, body.password)
    except lifecycle.LinkError as exc:
        return JSONResponse({"code": exc.code, "message": str(exc)}, status_code=_LINK_STATUS[exc.code])
    return JSONResponse(result)
