"""application groups that come from a directory read their members through the directory's
memberships: their own member rows go (each membership is stored once)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DIRECTORY_GROUPS = "SELECT id FROM app_groups WHERE source = 'directory'"


def upgrade() -> None:
    op.execute(sa.text(f"DELETE FROM app_group_members WHERE group_id IN ({DIRECTORY_GROUPS})"))


def downgrade() -> None:
    """Copy the directory's memberships into member rows again."""
    op.execute(
        sa.text(
            "INSERT INTO app_group_members (group_id, member_id, member_type, organization_id)"
            " SELECT ag.id, a.id, 'account', ag.organization_id FROM group_user_memberships m"
            " JOIN app_groups ag ON ag.directory_group_id = m.group_id"
            " JOIN accounts a ON a.directory_user_id = m.user_id"
        )
    )
    op.execute(
        sa.text(
            "INSERT INTO app_group_members (group_id, member_id, member_type, organization_id)"
            " SELECT ag.id, child.id, 'group', ag.organization_id FROM group_group_memberships m"
            " JOIN app_groups ag ON ag.directory_group_id = m.parent_group_id"
            " JOIN app_groups child ON child.directory_group_id = m.child_group_id"
        )
    )
