"""An emulated Entra tenant with a registered application, and azure directories reading it."""

from __future__ import annotations

from typing import Any

from roster.demo.graph import App, GraphEmulator
from roster.demo.graph_tenant import DEVICE_TYPE, Tenant, new_guid
from roster.directories import DirectorySpec, create_directory
from roster.runtime import Runtime

SECRET = "s3cr3t~value.from-the-portal"


def register_app(graph: GraphEmulator, **kwargs: Any) -> App:
    return graph.register(App(client_id=new_guid(), secret=SECRET, **kwargs))


def azure_directory(
    rt: Runtime, org: str, graph: GraphEmulator, app: App, secret: str = SECRET, **settings: Any
) -> str:
    given = {
        "tenant_id": graph.tenant.tenant_id,
        "client_id": app.client_id,
        "login_url": graph.base,
        "graph_url": graph.graph_url,
        "ca_file": str(graph.ca_file),
        **settings,
    }
    return str(create_directory(rt, DirectorySpec(org, "Entra", "azure", given, secret))["id"])


def person(tenant: Tenant, name: str, **props: Any) -> str:
    first, _, last = name.partition(" ")
    base = {
        "displayName": name,
        "givenName": first,
        "surname": last or None,
        "mail": f"{first.lower()}@example.com",
        "userPrincipalName": f"{first.lower()}@example.onmicrosoft.com",
        "accountEnabled": True,
        "userType": "Member",
        "businessPhones": [],
    }
    return tenant.put_user({**base, **props})


def company(tenant: Tenant) -> dict[str, str]:
    """Five people, a group of seven members (split across pages), a nested group, a device member."""
    ids = {n: person(tenant, n) for n in ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra")}
    ids["Guest"] = person(
        tenant,
        "Guest Person",
        mail=None,
        userPrincipalName="guest_other.com#EXT#@example.onmicrosoft.com",
        userType="Guest",
        otherMails=["guest@other.com"],
    )
    ids["eng"] = tenant.put_group({"displayName": "Engineering", "description": "Builders"})
    ids["all"] = tenant.put_group({"displayName": "Everyone", "description": None})
    for n in ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Guest"):
        tenant.add_member(ids["all"], ids[n])
    tenant.add_member(ids["all"], ids["eng"])
    tenant.add_member(ids["all"], new_guid(), DEVICE_TYPE)
    for n in ("Ada Lovelace", "Grace Hopper"):
        tenant.add_member(ids["eng"], ids[n])
    return ids
