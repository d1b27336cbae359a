"""membership events stored as runs: one events row may hold the membership events of one group
(the users' object refs, one per line); each is still an event of its own when read

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("members", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("member_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Every run becomes the rows it stands for, with the ids its events were read under."""
    conn = op.get_bind()
    runs = conn.execute(
        sa.text(
            "SELECT id, organization_id, directory_id, event, created_at, group_ref, members FROM events"
            " WHERE members IS NOT NULL"
        )
    ).all()
    rows = [
        {"id": f"{rid}.{i:04d}", "o": org, "d": d, "e": kind, "t": at, "u": ref, "g": group}
        for rid, org, d, kind, at, group, members in runs
        for i, ref in enumerate(members.split("\n"))
    ]
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO events (id, organization_id, directory_id, event, data, created_at, user_ref,"
                " group_ref) VALUES (:id, :o, :d, :e, '', :t, :u, :g)"
            ),
            rows,
        )
        conn.execute(sa.text("DELETE FROM events WHERE members IS NOT NULL"))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("member_count")
        batch_op.drop_column("members")
