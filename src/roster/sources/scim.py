"""The ``scim`` directory type: an identity provider pushes users and groups over SCIM 2.0.

Roster reads nothing from such a directory (no connector, no password check): each request to
its endpoint (``roster.scim``) is ingested as it arrives. The provider is remembered to report
the directory as the WorkOS API names it, and to show the admin which dialect to expect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from roster.connectors.base import ConfigError
from roster.sources.base import SourceType, check_mapping

# provider -> the directory type the WorkOS API reports
PROVIDERS = {
    "okta": "okta scim v2.0",
    "entra": "azure scim v2.0",
    "onelogin": "onelogin scim v2.0",
    "jumpcloud": "jump cloud scim v2.0",
    "pingfederate": "pingfederate scim v2.0",
    "rippling": "rippling scim v2.0",
    "generic": "generic scim v2.0",
}


def check(given: Mapping[str, Any], secret: str | None) -> dict[str, Any]:
    provider = given.get("provider") or "generic"
    if provider not in PROVIDERS:
        raise ConfigError(f"provider: {provider!r} is not supported; use one of {', '.join(PROVIDERS)}")
    if secret:
        raise ConfigError("secret: a scim directory has no stored secret; its tokens are issued by Roster")
    mapping, _ = check_mapping(given.get("mapping"))
    return {"provider": provider, "workos_type": PROVIDERS[provider], "mapping": mapping}


SCIM = SourceType(
    name="scim",
    label="SCIM 2.0 (pushed by the identity provider)",
    check=check,
    connector=None,
    pushed=True,
)
