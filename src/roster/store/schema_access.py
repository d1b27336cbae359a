"""Tables of the ways in: SSO logins and codes, SCIM tokens and requests, the on-prem agent,
operators and their console sessions, self-serve setup links."""

from __future__ import annotations

import sqlalchemy as sa

from roster.store.schema_base import metadata, primary_id, ts

sso_logins = sa.Table(
    "sso_logins",
    metadata,
    primary_id(length=64),  # sha256 of the state
    sa.Column("organization_id", sa.String(48), nullable=False),
    sa.Column("directory_id", sa.String(48), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("host_state", sa.Text, nullable=True),
    sa.Column("sealed", sa.Text, nullable=False),  # nonce and PKCE verifier, encrypted
    ts("created_at"),
    ts("expires_at"),
)

sso_codes = sa.Table(
    "sso_codes",
    metadata,
    primary_id(length=64),  # sha256 of the code
    sa.Column("organization_id", sa.String(48), nullable=False),
    sa.Column("directory_user_id", sa.String(48), nullable=False),
    sa.Column("account_id", sa.String(48), nullable=False),
    ts("created_at"),
    ts("expires_at"),
    ts("used_at", nullable=True),
)

# Inbound SCIM: the bearer tokens of a ``scim`` directory (sha256 of the token; a rotated-out token
# keeps working until ``expires_at``) and the log of what the provider sent.
scim_tokens = sa.Table(
    "scim_tokens",
    metadata,
    primary_id(length=64),  # sha256 of the token
    sa.Column(
        "directory_id",
        sa.String(48),
        sa.ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    ts("created_at"),
    ts("expires_at", nullable=True),  # None: the current token
)

scim_requests = sa.Table(
    "scim_requests",
    metadata,
    primary_id(),
    sa.Column(
        "directory_id",
        sa.String(48),
        sa.ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("user_agent", sa.String(300), nullable=True),
    sa.Column("body", sa.Text, nullable=True),  # redacted (no password), cut at 4 KB
    sa.Column("run_id", sa.String(48), nullable=True),  # the sync run the request applied as
    ts("created_at"),
    sa.Index("ix_scim_requests_directory_id_id", "directory_id", "id"),
)

# The on-prem agent: Roster's own CA for agent certificates (one row), one-time enrolment codes,
# enrolled agents, the tasks they lease, and the chunks of what a sync task uploads.
agent_ca = sa.Table(
    "agent_ca",
    metadata,
    primary_id(length=16),  # "default"
    sa.Column("cert_pem", sa.Text, nullable=False),
    sa.Column("key_sealed", sa.Text, nullable=False),  # the CA's private key, encrypted
    ts("created_at"),
)

agent_codes = sa.Table(
    "agent_codes",
    metadata,
    primary_id(length=64),  # sha256 of the code
    sa.Column(
        "directory_id", sa.String(48), sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=False
    ),
    ts("created_at"),
    ts("expires_at"),
    ts("used_at", nullable=True),
)

agents = sa.Table(
    "agents",
    metadata,
    primary_id(),
    sa.Column(
        "directory_id",
        sa.String(48),
        sa.ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("organization_id", sa.String(48), nullable=False),
    sa.Column("public_key_pem", sa.Text, nullable=False),
    sa.Column("cert_serial", sa.String(64), nullable=False),
    ts("cert_expires_at"),
    sa.Column("hostname", sa.String(255), nullable=True),
    sa.Column("version", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # active | revoked
    sa.Column("last_error", sa.Text, nullable=True),
    ts("last_seen_at", nullable=True),
    ts("created_at"),
)

agent_tasks = sa.Table(
    "agent_tasks",
    metadata,
    primary_id(),
    sa.Column(
        "directory_id", sa.String(48), sa.ForeignKey("directories.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("kind", sa.String(16), nullable=False),  # full | incremental | test
    sa.Column("status", sa.String(16), nullable=False),  # queued | leased | uploaded | failed | done
    sa.Column("payload", sa.Text, nullable=False),  # JSON the agent needs (cursor, fingerprints...)
    sa.Column("agent_id", sa.String(48), nullable=True),
    ts("lease_until", nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # a test's report, or a failure's reason
    ts("created_at"),
    ts("finished_at", nullable=True),
    sa.Index("ix_agent_tasks_directory_id_status", "directory_id", "status"),
)

agent_uploads = sa.Table(
    "agent_uploads",
    metadata,
    sa.Column(
        "task_id",
        sa.String(48),
        sa.ForeignKey("agent_tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("offset", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

# --- the admin console ---------------------------------------------------------------------------

operators = sa.Table(  # people who run Roster for every organization (``roster operator create``)
    "operators",
    metadata,
    primary_id(),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_lower", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    ts("created_at"),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    primary_id(length=64),  # sha256 of the cookie's token
    sa.Column("operator_id", sa.String(48), sa.ForeignKey("operators.id", ondelete="CASCADE"), nullable=True),
    sa.Column("account_id", sa.String(48), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True),
    sa.Column("organization_id", sa.String(48), nullable=True),  # the organization being administered
    ts("created_at"),
    ts("last_seen_at"),
    ts("expires_at"),  # absolute end, whatever the activity
)

setup_links = sa.Table(  # self-serve setup for a customer's IT admin: no account needed, one active per org
    "setup_links",
    metadata,
    primary_id(length=64),  # sha256 of the link's token
    sa.Column(
        "organization_id",
        sa.String(48),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("intent", sa.String(16), nullable=False),  # dsync
    sa.Column("directory_id", sa.String(48), nullable=True),  # set up this directory (else a new one)
    sa.Column("success_url", sa.Text, nullable=True),
    sa.Column("return_url", sa.Text, nullable=True),
    sa.Column("external_user_id", sa.String(255), nullable=True),  # whom the host application made it for
    ts("created_at"),
    ts("expires_at"),
    ts("revoked_at", nullable=True),
    sa.Index("ix_setup_links_organization_id_intent", "organization_id", "intent"),
)
