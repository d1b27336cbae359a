"""inbound SCIM: bearer tokens of scim directories (hashed, with a grace period on rotation) and
the log of the requests each provider sent

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "directory_id",
            sa.String(48),
            sa.ForeignKey(
                "directories.id", ondelete="CASCADE", name="fk_scim_tokens_directory_id_directories"
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_scim_tokens_directory_id", "scim_tokens", ["directory_id"])
    op.create_table(
        "scim_requests",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column(
            "directory_id",
            sa.String(48),
            sa.ForeignKey(
                "directories.id", ondelete="CASCADE", name="fk_scim_requests_directory_id_directories"
            ),
            nullable=False,
        ),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(48), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scim_requests_directory_id_id", "scim_requests", ["directory_id", "id"])


def downgrade() -> None:
    op.drop_table("scim_requests")
    op.drop_table("scim_tokens")
