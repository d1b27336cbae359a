"""single sign-on through a directory's identity provider: registered redirect URIs per
organization, sign-ins on their way, one-time codes for the host application

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sso_redirect_uris", sa.JSON(), nullable=True))
    op.create_table(
        "sso_logins",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("organization_id", sa.String(48), nullable=False),
        sa.Column("directory_id", sa.String(48), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("host_state", sa.Text(), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sso_codes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("organization_id", sa.String(48), nullable=False),
        sa.Column("directory_user_id", sa.String(48), nullable=False),
        sa.Column("account_id", sa.String(48), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sso_codes")
    op.drop_table("sso_logins")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("sso_redirect_uris")
