"""Request models shared by the admin API's routers."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Strict(BaseModel):
    """Unknown fields refused, and no NUL character in any text (PostgreSQL refuses them in text
    columns; SQLite would store them): a 422 naming the field, on both stores."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain a NUL character")
        return value


class Patch(Strict):
    """A partial update: a field left out keeps its value; an explicit ``null`` is taken only for
    the fields in ``NULLABLE`` (where it means "none" or "the default"), and refused elsewhere."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


def _has_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 64:  # deeper JSON is refused elsewhere; do not recurse without bound
        return False
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


class Mapping_(Strict):
    user: dict[str, str] = Field(default_factory=dict, description="field -> LDAP attribute")
    group: dict[str, str] = Field(default_factory=dict, description="field -> LDAP attribute")
