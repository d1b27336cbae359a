"""The LDAP flavours by directory type: each vendor's quirks live in its own module."""

from __future__ import annotations

from roster.connectors.ldap.active_directory import ACTIVE_DIRECTORY
from roster.connectors.ldap.flavours import Flavour
from roster.connectors.ldap.openldap import OPENLDAP

FLAVOURS: dict[str, Flavour] = {"ldap": OPENLDAP, "active_directory": ACTIVE_DIRECTORY}


def get_flavour(name: str) -> Flavour:
    try:
        return FLAVOURS[name]
    except KeyError:
        raise ValueError(
            f"type: {name!r} is not an LDAP directory type; use one of {', '.join(FLAVOURS)}"
        ) from None
