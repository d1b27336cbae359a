"""An Entra directory's connection settings, and the national clouds' hosts.

Hosts from Microsoft's "National cloud deployments" page: the login host and the Graph host of
each cloud. ``login_url`` and ``graph_url`` given explicitly win over ``cloud``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from roster.connectors.base import ConfigError
from roster.domain.mapping import AttributeMapping

CLOUDS: dict[str, tuple[str, str]] = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0"),
    "usgov-dod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0"),
}
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

# Graph's names for the normalized fields, in order of preference (lower-case, as mapping wants)
GRAPH_MAPPING = AttributeMapping(
    user={
        "name": ("displayname",),
        "first_name": ("givenname",),
        "last_name": ("surname",),
        "email": ("mail", "othermails"),
        "phone": ("businessphones", "mobilephone"),
        "username": ("userprincipalname",),
        "job_title": ("jobtitle",),
    },
    group={"name": ("displayname",), "description": ("description",)},
)
USER_SELECT = (
    "id,displayName,givenName,surname,mail,otherMails,userPrincipalName,businessPhones,mobilePhone,"
    "jobTitle,department,employeeId,accountEnabled,userType"
)
GROUP_SELECT = "displayName,description,members"


@dataclass(frozen=True)
class Credential:
    """A client secret, or a certificate (its private key PEM and the certificate PEM)."""

    secret: str | None = None
    private_key_pem: str | None = None
    certificate_pem: str | None = None


@dataclass(frozen=True)
class GraphConfig:
    tenant_id: str
    client_id: str
    credential: Credential
    login_url: str
    graph_url: str
    ca_file: str | None = None
    upn_as_email: bool = False  # a user with neither mail nor otherMails: its UPN (never a guest's)
    mapping: AttributeMapping = field(default_factory=lambda: GRAPH_MAPPING)
    timeout: float = 30.0
    max_retries: int = 6


def hosts(cloud: str | None, login_url: str | None, graph_url: str | None) -> tuple[str, str]:
    """(login URL, Graph URL) for a cloud, with explicit URLs winning."""
    name = cloud or "global"
    if name not in CLOUDS:
        raise ConfigError(f"cloud: {name!r} is not a cloud; use one of {', '.join(CLOUDS)}")
    login, graph = CLOUDS[name]
    for label, url in (("login_url", login_url), ("graph_url", graph_url)):
        if url is not None and not url.startswith("https://"):
            raise ConfigError(f"{label}: must be an https:// URL, not {url!r}")
    return (login_url or login).rstrip("/"), (graph_url or graph).rstrip("/")


def check_ids(tenant_id: str | None, client_id: str | None) -> tuple[str, str]:
    if not tenant_id or not (GUID.match(tenant_id) or DOMAIN.match(tenant_id)):
        raise ConfigError(
            f"tenant_id: {tenant_id!r} is not a tenant id (a GUID or a domain such as contoso.com)"
        )
    if not client_id or not GUID.match(client_id):
        raise ConfigError(f"client_id: {client_id!r} is not an application (client) id (a GUID)")
    return tenant_id, client_id
