"""event objects: membership events refer to stored object versions instead of embedding them;
sync runs remember the newest account change they saw; groups keep a digest of their members;
users keep a fingerprint of their entry as read; users and groups keep their normalized DN

Revision ID: 0009
Revises: 0008
"""

import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_objects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_objects")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_ref", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("group_ref", sa.String(length=32), nullable=True))
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accounts_seen_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_hash", sa.String(length=32), nullable=True))
    for table in ("directory_users", "directory_groups"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("dn_key", sa.Text(), nullable=True))
            batch_op.create_index(f"ix_{table}_directory_id_dn_key", ["directory_id", "dn_key"])
        _fill_dn_keys(table)
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("members_hash", sa.String(length=32), nullable=True))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_organization_id_updated_at", ["organization_id", "updated_at"])


def _normalize_dn(dn: str) -> str:
    """roster.domain.mapping.normalize_dn as of this revision."""
    dn = dn.lower()
    if " " in dn:
        dn = re.sub(r"\s*([,=+])\s*", r"\1", dn.strip())
    return dn


def _fill_dn_keys(table: str) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, dn FROM {table}")).all()
    if rows:
        conn.execute(
            sa.text(f"UPDATE {table} SET dn_key = :key WHERE id = :id"),
            [{"id": rid, "key": _normalize_dn(dn)} for rid, dn in rows],
        )


def _embed_membership_objects() -> None:
    """Before the references go: write each membership event's objects back into its data."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT e.id, e.directory_id, u.data, g.data FROM events e"
            " JOIN event_objects u ON u.id = e.user_ref JOIN event_objects g ON g.id = e.group_ref"
        )
    ).all()
    if rows:
        conn.execute(
            sa.text("UPDATE events SET data = :data WHERE id = :id"),
            [
                {"id": eid, "data": f'{{"directory_id":{json.dumps(d)},"user":{user},"group":{group}}}'}
                for eid, d, user, group in rows
            ],
        )


def downgrade() -> None:
    _embed_membership_objects()
    for table in ("directory_users", "directory_groups"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_directory_id_dn_key")
            batch_op.drop_column("dn_key")
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.drop_column("source_hash")
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.drop_column("members_hash")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_organization_id_updated_at")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("accounts_seen_at")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("group_ref")
        batch_op.drop_column("user_ref")
    op.drop_table("event_objects")
