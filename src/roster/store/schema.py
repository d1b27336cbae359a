"""Tables. SQLAlchemy Core, one schema for SQLite and PostgreSQL; Alembic migrates it."""

from __future__ import annotations

import sqlalchemy as sa

from roster.store import schema_access  # noqa: F401 (its tables join the metadata on import)
from roster.store.schema_base import metadata as metadata
from roster.store.schema_base import primary_id, ts

organizations = sa.Table(
    "organizations",
    metadata,
    primary_id(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("domain", sa.String(253), nullable=True),
    ts("created_at"),
    ts("updated_at"),
    # what happens to an application group whose directory group disappears: remove | keep_inactive
    sa.Column("group_removal_policy", sa.String(16), nullable=False, server_default="remove"),
    # directory alerts go to these accounts only (else to every admin)
    sa.Column("notify_only_selected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("alert_recipients", sa.JSON, nullable=True),
    # the deletion guard's thresholds for this organization (else the server's)
    sa.Column("guard_max_share", sa.Float, nullable=True),
    sa.Column("guard_min_count", sa.Integer, nullable=True),
    # the daily full sync, in the organization's time zone; optional incremental interval
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("daily_sync_time", sa.String(5), nullable=False, server_default="00:00"),
    sa.Column("incremental_minutes", sa.Integer, nullable=True),
    # where single sign-on may send a browser back to (exact URIs; nothing else is ever redirected to)
    sa.Column("sso_redirect_uris", sa.JSON, nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    primary_id(),
    sa.Column(
        "organization_id",
        sa.String(48),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(16), nullable=False),
    ts("created_at"),
    ts("last_used_at", nullable=True),
    ts("revoked_at", nullable=True),
)

directories = sa.Table(
    "directories",
    metadata,
    primary_id(),
    sa.Column(
        "organization_id",
        sa.String(48),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("secret", sa.Text, nullable=True),
    ts("created_at"),
    ts("updated_at"),
    ts("last_sync_at", nullable=True),
    sa.Column("cursor", sa.Text, nullable=True),
    # the periodic access check
    ts("last_check_at", nullable=True),
    sa.Column("last_check_ok", sa.Boolean, nullable=True),
    sa.Column("last_check_error", sa.Text, nullable=True),
    ts("lost_alerted_at", nullable=True),  # one alert per outage
    # at most one worker syncs a directory at a time
    sa.Column("lease_owner", sa.String(100), nullable=True),
    ts("lease_until", nullable=True),
)

directory_users = sa.Table(
    "directory_users",
    metadata,
    primary_id(),
    sa.Column(
        "directory_id",
        sa.String(48),
        sa.ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("organization_id", sa.String(48), nullable=False, index=True),
    sa.Column("idp_id", sa.String(255), nullable=False),
    sa.Column("dn", sa.Text, nullable=True),  # only where the source has DNs (LDAP)
    sa.Column("ref_key", sa.Text, nullable=True),  # how members name it: records.ref_key (DN key or id)
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("email_lower", sa.String(320), nullable=True, index=True),
    sa.Column("name", sa.String(400), nullable=True),
    sa.Column("first_name", sa.String(200), nullable=True),
    sa.Column("last_name", sa.String(200), nullable=True),
    sa.Column("username", sa.String(200), nullable=True),
    sa.Column("job_title", sa.String(200), nullable=True),
    sa.Column("phone", sa.String(100), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("present", sa.Boolean, nullable=False),
    sa.Column("raw_attributes", sa.Text, nullable=False),
    sa.Column("custom_attributes", sa.Text, nullable=False, server_default="{}"),
    sa.Column("content_hash", sa.String(32), nullable=False),
    sa.Column("source_hash", sa.String(32), nullable=True),  # fingerprint of the entry as last read
    ts("created_at"),
    ts("updated_at"),
    sa.UniqueConstraint("directory_id", "idp_id"),
    sa.Index("ix_directory_users_directory_id_ref_key", "directory_id", "ref_key"),
)

directory_groups = sa.Table(
    "directory_groups",
    metadata,
    primary_id(),
    sa.Column(
        "directory_id",
        sa.String(48),
        sa.ForeignKey("directories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("organization_id", sa.String(48), nullable=False, index=True),
    sa.Column("idp_id", sa.String(255), nullable=False),
    sa.Column("dn", sa.Text, nullable=True),  # only where the source has DNs (LDAP)
    sa.Column("ref_key", sa.Text, nullable=True),  # how members name it: records.ref_key (DN key or id)
    sa.Column("name", sa.String(400), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("raw_attributes", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(32), nullable=False),
    sa.Column("members_hash", sa.String(32), nullable=True),  # digest of its member set (None: unknown)
    ts("created_at"),
    ts("updated_at"),
    sa.UniqueConstraint("directory_id", "idp_id"),
    sa.Index("ix_directory_groups_directory_id_ref_key", "directory_id", "ref_key"),
)

group_user_memberships = sa.Table(
    "group_user_memberships",
    metadata,
    sa.Column("group_id", sa.String(48), primary_key=True),
    sa.Column("user_id", sa.String(48), primary_key=True, index=True),
    sa.Column("directory_id", sa.String(48), nullable=False, index=True),
)

group_group_memberships = sa.Table(
    "group_group_memberships",
    metadata,
    sa.Column("parent_group_id", sa.String(48), primary_key=True),
    sa.Column("child_group_id", sa.String(48), primary_key=True, index=True),
    sa.Column("directory_id", sa.String(48), nullable=False, index=True),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    primary_id(),
    sa.Column("directory_id", sa.String(48), nullable=False, index=True),
    sa.Column("organization_id", sa.String(48), nullable=False, index=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("error_reason", sa.String(32), nullable=True),
    ts("started_at"),
    ts("finished_at", nullable=True),
    # a run the deletion guard held: what it would apply, and the admin's decision
    sa.Column("plan_digest", sa.String(64), nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),  # approved | rejected
    ts("decided_at", nullable=True),
    # the newest account change of the organization when the run finished (None: not looked)
    ts("accounts_seen_at", nullable=True),
)

sync_log = sa.Table(
    "sync_log",
    metadata,
    primary_id(),
    sa.Column("run_id", sa.String(48), nullable=False, index=True),
    sa.Column("directory_id", sa.String(48), nullable=False, index=True),
    sa.Column("change", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(16), nullable=False),
    sa.Column("object_id", sa.String(48), nullable=True),
    sa.Column("external_id", sa.String(255), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    ts("created_at"),
)

events = sa.Table(
    "events",
    metadata,
    primary_id(),
    sa.Column("organization_id", sa.String(48), nullable=False),
    sa.Column("directory_id", sa.String(48), nullable=False, index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # membership events: "" (see user_ref, group_ref)
    ts("created_at"),
    # Membership events name stored object versions instead of embedding them (events/objects.py)
    sa.Column("user_ref", sa.String(32), nullable=True),
    sa.Column("group_ref", sa.String(32), nullable=True),
    # One row may hold a run of membership events of one group (events/feed.py): the users'
    # refs, one per line, and how many; each member is an event of its own when read
    sa.Column("members", sa.Text, nullable=True),
    sa.Column("member_count", sa.Integer, nullable=True),
    sa.Index("ix_events_organization_id_id", "organization_id", "id"),
    sa.Index("ix_events_event_id", "event", "id"),
)

event_objects = sa.Table(
    "event_objects",
    metadata,
    primary_id(length=32),  # a hash of ``data``: each version of a user or group is stored once
    sa.Column("data", sa.Text, nullable=False),
    ts("last_used"),  # the newest event naming it; pruned with the events
)


# The application side: the host application's accounts and groups, following the directory.
accounts = sa.Table(
    "accounts",
    metadata,
    primary_id(),
    sa.Column(
        "organization_id",
        sa.String(48),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_lower", sa.String(320), nullable=False),
    sa.Column("name", sa.String(400), nullable=True),
    sa.Column("phone", sa.String(100), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(16), nullable=True),  # directory | admin
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("directory_id", sa.String(48), nullable=True, index=True),
    sa.Column("directory_user_id", sa.String(48), nullable=True, unique=True),
    sa.Column("provisioned", sa.Boolean, nullable=False),  # created from the directory, not linked
    sa.Column("unlinked_from", sa.String(48), nullable=True),  # a disabled directory it followed
    sa.Column("data", sa.JSON, nullable=False),
    ts("created_at"),
    ts("updated_at"),
    sa.UniqueConstraint("organization_id", "email_lower"),
    sa.Index("ix_accounts_organization_id_updated_at", "organization_id", "updated_at"),  # newest change
)

app_groups = sa.Table(
    "app_groups",
    metadata,
    primary_id(),
    sa.Column(
        "organization_id",
        sa.String(48),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(400), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),  # local | directory
    sa.Column("state", sa.String(16), nullable=False),  # active | inactive
    sa.Column("directory_id", sa.String(48), nullable=True, index=True),
    sa.Column("directory_group_id", sa.String(48), nullable=True, unique=True),
    sa.Column("directory_idp_id", sa.String(255), nullable=True),
    ts("created_at"),
    ts("updated_at"),
)

app_group_members = sa.Table(
    "app_group_members",
    metadata,
    sa.Column("group_id", sa.String(48), primary_key=True),
    sa.Column("member_id", sa.String(48), primary_key=True, index=True),  # an account or a group
    sa.Column("member_type", sa.String(8), nullable=False),  # account | group
    sa.Column("organization_id", sa.String(48), nullable=False, index=True),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("organization_id", sa.String(48), primary_key=True),
    sa.Column("resource_id", sa.String(255), primary_key=True),
    sa.Column("principal_id", sa.String(48), primary_key=True, index=True),  # account or group
    sa.Column("principal_type", sa.String(8), nullable=False),
    ts("created_at"),
)

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("organization_id", sa.String(48), primary_key=True),
    sa.Column("resource_id", sa.String(255), primary_key=True),
    sa.Column("owner_account_id", sa.String(48), nullable=False, index=True),
    ts("created_at"),
)

login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),  # account:<org>:<email> or address:<ip>
    sa.Column("failures", sa.Integer, nullable=False),
    ts("window_start"),
)


mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    primary_id(),
    sa.Column("organization_id", sa.String(48), nullable=False, index=True),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(400), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    ts("created_at"),
    ts("sent_at", nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
)

action_tokens = sa.Table(
    "action_tokens",
    metadata,
    primary_id(),
    sa.Column("organization_id", sa.String(48), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # recover_access | confirm_disable | reset_password
    sa.Column("account_id", sa.String(48), nullable=True),
    sa.Column("directory_id", sa.String(48), nullable=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    ts("created_at"),
    ts("expires_at"),
    ts("used_at", nullable=True),
)


webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    primary_id(),
    sa.Column(
        "organization_id",
        sa.String(48),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.JSON, nullable=True),  # event types it wants; null: all
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # encrypted: it signs every delivery
    sa.Column("previous_secret", sa.Text, nullable=True),  # encrypted, honoured until previous_until
    ts("previous_until", nullable=True),
    sa.Column("cursor", sa.String(48), nullable=True),  # the last event it was done with (in order)
    ts("head_since", nullable=True),  # first attempt at the event after the cursor
    sa.Column("head_attempts", sa.Integer, nullable=False, server_default="0"),
    ts("next_attempt_at", nullable=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing", sa.Boolean, nullable=False, server_default=sa.false()),
    ts("lease_until", nullable=True),  # one deliverer per endpoint at a time
    ts("created_at"),
    ts("updated_at"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    primary_id(),
    sa.Column("endpoint_id", sa.String(48), nullable=False, index=True),
    sa.Column("event_id", sa.String(48), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # delivered | retry | failed
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("manual", sa.Boolean, nullable=False, server_default=sa.false()),
    ts("created_at"),
)


jobs = sa.Table(
    "jobs",
    metadata,
    primary_id(),
    sa.Column("kind", sa.String(16), nullable=False),  # sync
    sa.Column("directory_id", sa.String(48), nullable=True, index=True),
    sa.Column("args", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | done | failed
    sa.Column("owner", sa.String(100), nullable=True),
    ts("lease_until", nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("run_id", sa.String(48), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    ts("created_at"),
    ts("started_at", nullable=True),
    ts("finished_at", nullable=True),
    sa.Index("ix_jobs_status_id", "status", "id"),
)


# Single sign-on through a directory's identity provider (OpenID Connect): a sign-in on its way
# (keyed by a hash of the state sent to the provider), then a one-time code for the host application.
