"""Request models shared by the admin API's routers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Mapping_(Strict):
    user: dict[str, str] = Field(default_factory=dict, description="field -> LDAP attribute")
    group: dict[str, str] = Field(default_factory=dict, description="field -> LDAP attribute")
