"""the on-prem agent: Roster's agent CA, one-time enrolment codes, enrolled agents, the tasks they
lease and the chunks a sync task uploads

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _directory_fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("directories.id", ondelete="CASCADE", name=f"fk_{table}_directory_id_directories")


def upgrade() -> None:
    op.create_table(
        "agent_ca",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_codes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("directory_id", sa.String(48), _directory_fk("agent_codes"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("directory_id", sa.String(48), _directory_fk("agents"), nullable=False),
        sa.Column("organization_id", sa.String(48), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("cert_serial", sa.String(64), nullable=False),
        sa.Column("cert_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_agents_directory_id", "agents", ["directory_id"])
    op.create_table(
        "agent_tasks",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("directory_id", sa.String(48), _directory_fk("agent_tasks"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.String(48), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_agent_tasks_directory_id_status", "agent_tasks", ["directory_id", "status"])
    op.create_table(
        "agent_uploads",
        sa.Column(
            "task_id",
            sa.String(48),
            sa.ForeignKey("agent_tasks.id", ondelete="CASCADE", name="fk_agent_uploads_task_id_agent_tasks"),
            primary_key=True,
        ),
        sa.Column("offset", sa.BigInteger(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_uploads")
    op.drop_table("agent_tasks")
    op.drop_table("agents")
    op.drop_table("agent_codes")
    op.drop_table("agent_ca")
