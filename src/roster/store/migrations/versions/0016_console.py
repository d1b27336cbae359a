"""the admin console: operator accounts, console sessions and self-serve setup links

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

    op.create_table(
        "setup_links",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "organization_id",
            sa.String(48),
            sa.ForeignKey(
                "organizations.id", ondelete="CASCADE", name="fk_setup_links_organization_id_organizations"
            ),
            nullable=False,
        ),
        sa.Column("intent", sa.String(16), nullable=False),
        sa.Column("directory_id", sa.String(48), nullable=True),
        sa.Column("success_url", sa.Text(), nullable=True),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("external_user_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_setup_links_organization_id_intent", "setup_links", ["organization_id", "intent"])


def downgrade() -> None:
    op.drop_table("setup_links")
    op.drop_table("console_sessions")
    op.drop_table("operators")
