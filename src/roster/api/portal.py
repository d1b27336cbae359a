"""WorkOS's Admin Portal API: ``POST /portal/generate_link`` and ``POST /portal/revoke_link``, so
the official SDK's ``admin_portal.generate_link`` returns a Roster setup link unchanged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from roster import setup_links
from roster.api.auth import PrincipalDep, RuntimeDep, check_org
from roster.api.models import Strict
from roster.store import repo

router = APIRouter(tags=["WorkOS-compatible"])


class GenerateLinkIn(Strict):
    organization: str = Field(description="The organization whose directory the link sets up.")
    intent: str = Field(default="dsync", description="Only `dsync` (Directory Sync) is served by Roster.")
    return_url: str | None = Field(default=None, description="Where the page's 'back' link goes.")
    success_url: str | None = Field(default=None, description="Where the admin goes when setup is done.")
    external_user_id: str | None = Field(default=None, max_length=255)
    it_contact_emails: list[str] | None = Field(default=None, max_length=20, description="Accepted, unused.")


class RevokeLinkIn(Strict):
    organization: str
    external_user_id: str = Field(max_length=255)


@router.post("/portal/generate_link", status_code=201)
def generate_link(body: GenerateLinkIn, rt: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """WorkOS Admin Portal: a setup link for the organization's IT admin to connect their directory
    (intent `dsync`)."""
    with rt.engine.begin() as conn:
        repo.get_organization(conn, body.organization)
        check_org(who, body.organization, "organization", body.organization)
        link, _ = setup_links.create(
            conn,
            rt.settings,
            body.organization,
            intent=body.intent,
            success_url=body.success_url,
            return_url=body.return_url,
            external_user_id=body.external_user_id,
        )
    return {"link": link}


@router.post("/portal/revoke_link", status_code=204)
def revoke_link(body: RevokeLinkIn, rt: RuntimeDep, who: PrincipalDep) -> None:
    """Revoke the organization's unused setup links."""
    with rt.engine.begin() as conn:
        repo.get_organization(conn, body.organization)
        check_org(who, body.organization, "organization", body.organization)
        setup_links.revoke(conn, body.organization, external_user_id=body.external_user_id)
