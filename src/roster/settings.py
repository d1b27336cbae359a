"""Roster's settings: one object, read from ``ROSTER_*`` environment variables.

Nothing else in Roster reads ``os.environ``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROSTER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///roster.db",
        description="SQLAlchemy URL of the store: sqlite:///FILE or postgresql+psycopg://...",
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts directory secrets at rest; read from key_file if unset.",
    )
    key_file: Path = Field(default=Path("roster.key"), description="Where the secret key lives.")
    bind_password: str | None = Field(
        default=None, description="Bind password for `roster directory create` (instead of a file)."
    )
    guard_max_share: float = Field(
        default=0.10, description="Deletion guard: largest share of users one run may deactivate."
    )
    guard_min_count: int = Field(
        default=10,
        description="Deletion guard: the share rule applies from this many deactivations.",
    )
    full_resync_hours: float = Field(
        default=24.0, description="A full run at least this often, even when incremental runs work."
    )
    ldap_connect_timeout: float = Field(default=10.0, description="Seconds to open a connection.")
    ldap_operation_timeout: float = Field(default=120.0, description="Seconds per LDAP operation.")
    ldap_page_size: int = Field(default=1000, description="Paged-results page size.")
    max_request_bytes: int = Field(default=1_048_576, description="Largest accepted request body.")
    ci: bool = Field(default=False, alias="CI", description="Set by CI; missing servers fail tests.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
