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
    smtp_host: str | None = Field(
        default=None, description="SMTP server; without one, mail stays in the outbox."
    )
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_security: str = Field(default="starttls", description="none, starttls or tls.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if the server wants one.")
    smtp_password: str | None = Field(default=None, description="SMTP password.")
    mail_sender: str = Field(default="roster@localhost", description="From: address of Roster's mail.")
    public_url: str = Field(default="http://127.0.0.1:8000", description="Base of links in e-mails.")
    link_ttl_hours: float = Field(default=24.0, description="How long e-mailed links stay valid.")
    console_idle_minutes: float = Field(
        default=30.0, description="A console session ends after this long without a request."
    )
    console_session_hours: float = Field(default=12.0, description="A console session ends after this long.")
    setup_link_hours: float = Field(
        default=72.0, description="How long a self-serve setup link stays valid (WorkOS's last 5 minutes)."
    )
    access_check_seconds: float = Field(default=60.0, description="Access check interval per directory.")
    access_check_delay_seconds: float = Field(default=60.0, description="Delay before the first check.")
    webhook_allow_private: bool = Field(
        default=False, description="Allow webhook URLs on loopback, link-local and private addresses."
    )
    webhook_timeout_seconds: float = Field(default=10.0, description="One webhook delivery attempt.")
    webhook_retry_hours: float = Field(default=72.0, description="How long a delivery is retried.")
    webhook_failing_after: int = Field(
        default=5, description="Failed attempts before an endpoint is failing."
    )
    webhook_workers: int = Field(default=8, description="Endpoints delivered to at once.")
    events_retention_days: float = Field(default=30.0, description="Events are kept this long.")
    sync_log_retention_days: float = Field(default=10.0, description="Sync logs are kept this long.")
    log_format: str = Field(default="text", description="text or json (one JSON object per line).")
    log_level: str = Field(default="INFO", description="Python logging level.")
    job_lease_seconds: float = Field(
        default=30.0, description="A worker's hold on a job; renewed while alive."
    )
    directory_allowed_networks: str = Field(
        default="",
        description="Networks (comma-separated CIDR) that directory URLs entered by an organization "
        "(an organization key, the console, a setup link) may reach; empty: anything but loopback, "
        "link-local and this server's own networks. Operators' URLs are not limited.",
    )
    directory_test_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a connection test waits for a directory, per step."
    )
    schedule_spread_seconds: float = Field(
        default=600.0,
        ge=0,
        le=86400,
        description="Daily runs due at one time start spread over this many seconds, each directory at "
        "its own fixed offset (so a thousand directories due at 00:00 do not start at once).",
    )
    jobs_per_organization: int = Field(
        default=2, ge=1, le=1000, description="Jobs of one organization that run at once, across all workers."
    )
    sync_wait_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="How long POST .../sync_runs with wait: true waits before answering with the job.",
    )
    ldap_connect_timeout: float = Field(default=10.0, description="Seconds to open a connection.")
    ldap_operation_timeout: float = Field(default=120.0, description="Seconds per LDAP operation.")
    ldap_page_size: int = Field(default=1000, description="Paged-results page size.")
    max_request_bytes: int = Field(default=1_048_576, description="Largest accepted request body.")
    agent_lease_seconds: float = Field(
        default=120.0, description="An agent's hold on a task; a silent agent's sync goes to another."
    )
    agent_task_seconds: float = Field(
        default=3600.0, description="How long a sync through an agent may take before the server gives up."
    )
    ci: bool = Field(default=False, alias="CI", description="Set by CI; missing servers fail tests.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
