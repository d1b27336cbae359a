"""Request models shared by the admin API's routers."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Strict(BaseModel):
    """Unknown fields refused, no NUL character in any text (PostgreSQL refuses them in text
    columns; SQLite would store them) and no JSON nested past ``MAX_DEPTH``: a 422 naming the
    field, on both stores."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _checked(cls, value: Any) -> Any:
        _check(value, 0)
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


MAX_DEPTH = 32  # JSON nesting of any field (deeper data could be stored but not read back)


def _check(value: Any, depth: int) -> None:
    """No NUL character anywhere, and no nesting deeper than ``MAX_DEPTH``."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple, set)):
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            _check(item, depth + 1)


class Mapping_(Strict):
    user: dict[str, str] = Field(default_factory=dict, description="field -> LDAP attribute")
    group: dict[str, str] = Field(default_factory=dict, description="field -> LDAP attribute")
