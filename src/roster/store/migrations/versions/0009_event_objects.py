"""event objects: membership events refer to stored object versions instead of embedding them;
sync runs remember the newest account change they saw; groups keep a digest of their members;
users keep a fingerprint of their entry as read

Revision ID: 0009
Revises: 0008
"""

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
    with op.batch_alter_table("directory_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("members_hash", sa.String(length=32), nullable=True))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_organization_id_updated_at", ["organization_id", "updated_at"])


def downgrade() -> None:
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
