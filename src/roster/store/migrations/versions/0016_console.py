"""the admin console: operator accounts and console sessions

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_lower", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("email_lower", name="uq_operators_email_lower"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "operator_id",
            sa.String(48),
            sa.ForeignKey(
                "operators.id", ondelete="CASCADE", name="fk_console_sessions_operator_id_operators"
            ),
            nullable=True,
        ),
        sa.Column(
            "account_id",
            sa.String(48),
            sa.ForeignKey("accounts.id", ondelete="CASCADE", name="fk_console_sessions_account_id_accounts"),
            nullable=True,
        ),
        sa.Column("organization_id", sa.String(48), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_sessions")
    op.drop_table("operators")
