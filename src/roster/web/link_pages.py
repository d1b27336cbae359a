"""Setup links from the console: create one for the customer's IT admin, or revoke it."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from roster import setup_links
from roster.store.db import utcnow
from roster.store.schema_access import setup_links as links_table
from roster.web.render import OrgSession, RuntimeDep, checked_form, page, redirect

router = APIRouter(prefix="/console", include_in_schema=False)


def live_link(conn: Connection, organization_id: str) -> dict[str, object] | None:
    """When the organization's live setup link expires (its token is never shown again)."""
    t = links_table
    row = conn.execute(
        sa.select(t.c.expires_at, t.c.created_at)
        .where(t.c.organization_id == organization_id, t.c.revoked_at.is_(None), t.c.expires_at > utcnow())
        .order_by(t.c.created_at.desc())
        .limit(1)
    ).first()
    return None if row is None else {"expires_at": row.expires_at, "created_at": row.created_at}


@router.post("/setup-link")
async def create_link(request: Request, rt: RuntimeDep, session: OrgSession) -> Response:
    form = await checked_form(request, session)
    assert session.organization_id is not None
    if form.get("action") == "revoke":
        with rt.engine.begin() as conn:
            setup_links.revoke(conn, session.organization_id)
        return redirect("/console/directories")
    with rt.engine.begin() as conn:
        link, row = setup_links.create(conn, rt.settings, session.organization_id)
    context = {"link": link, "expires_at": row["expires_at"]}
    return page(request, "setup_link.html", context, session)
