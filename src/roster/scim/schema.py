"""What Roster's SCIM endpoint publishes about itself (RFC 7643 sections 5-7, RFC 7644 section 4),
and the attribute names of its resources.

The schema documents come from scim2-models (the RFC 7643 section 8.7 definitions as pydantic
models); the names found there are how Roster spells an attribute whatever case a provider
used (attribute names are case-insensitive, RFC 7643 section 2.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

MAX_RESULTS = 1000  # the most resources one list response holds

# resource type -> (endpoint, core schema, extension schemas)
RESOURCE_TYPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "User": ("Users", USER, (ENTERPRISE,)),
    "Group": ("Groups", GROUP, ()),
}


@cache
def schema_documents() -> dict[str, dict[str, Any]]:
    """Schema URN -> its RFC 7643 section 7 representation (without ``meta``)."""
    from scim2_models import EnterpriseUser, Group, User

    docs = {}
    for model in (User, EnterpriseUser, Group):
        doc: dict[str, Any] = model.to_schema().model_dump(mode="json", exclude_none=True)
        doc.pop("meta", None)
        docs[doc["id"]] = doc
    for member in docs[GROUP]["attributes"]:
        if member["name"] == "members":  # Roster names a member by its own display name
            for sub in member.get("subAttributes", ()):
                if sub["name"] == "display":
                    sub["mutability"] = "readOnly"
    return docs


@cache
def _attributes(urn: str) -> dict[str, dict[str, Any]]:
    """Lower-case name -> attribute definition, for one schema."""
    return {a["name"].lower(): a for a in schema_documents()[urn]["attributes"]}


def attribute(urn: str, name: str) -> dict[str, Any] | None:
    """The definition of a top-level attribute of schema ``urn`` (any case), or None."""
    return _attributes(urn).get(name.lower())


def sub_attribute(definition: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for sub in definition.get("subAttributes") or ():
        if sub["name"].lower() == name.lower():
            return dict(sub)
    return None


def canonical(urn: str, name: str) -> str:
    """How Roster spells attribute ``name`` of schema ``urn``; an unknown name stays as given."""
    found = attribute(urn, name)
    return str(found["name"]) if found else name


def extension_of(resource_type: str, name: str) -> str | None:
    """The extension schema URN that ``name`` is (any case), or None."""
    for urn in RESOURCE_TYPES[resource_type][2]:
        if urn.lower() == name.lower():
            return urn
    return None


def service_provider_config(base_url: str) -> dict[str, Any]:
    return {
        "schemas": [SPC],
        "documentationUri": f"{base_url}/ServiceProviderConfig",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "The bearer token Roster issued for this directory",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url}/ServiceProviderConfig"},
    }


def resource_type_document(name: str, base_url: str) -> dict[str, Any]:
    endpoint, core, extensions = RESOURCE_TYPES[name]
    doc: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE],
        "id": name,
        "name": name,
        "endpoint": f"/{endpoint}",
        "description": name,
        "schema": core,
        "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/{name}"},
    }
    if extensions:
        doc["schemaExtensions"] = [{"schema": urn, "required": False} for urn in extensions]
    return doc


def schema_document(urn: str, base_url: str) -> dict[str, Any]:
    doc = dict(schema_documents()[urn])
    doc["schemas"] = [SCHEMA]
    doc["meta"] = {"resourceType": "Schema", "location": f"{base_url}/Schemas/{urn}"}
    return doc
