"""directory users: custom attributes (vendor state such as AD lockout)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directory_users") as batch:
        batch.add_column(sa.Column("custom_attributes", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("directory_users") as batch:
        batch.drop_column("custom_attributes")
