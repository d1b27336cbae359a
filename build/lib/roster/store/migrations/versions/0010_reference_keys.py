"""source-neutral references: users and groups are looked up by a reference key (their DN in the
canonical RFC 4514 form where the source has DNs, else their external id), and the DN is optional

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from roster.domain.records import ref_key

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("directory_users", "directory_groups")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_directory_id_dn_key")
            batch_op.alter_column("dn_key", new_column_name="ref_key", existing_type=sa.Text())
            batch_op.alter_column("dn", existing_type=sa.Text(), nullable=True)
        op.create_index(f"ix_{table}_directory_id_ref_key", table, ["directory_id", "ref_key"])
        _fill_keys(table)


def _fill_keys(table: str) -> None:
    """Every key again: DNs with escapes (``\\2C`` and ``\\,``) now compare equal."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, idp_id, dn FROM {table}")).all()
    if rows:
        conn.execute(
            sa.text(f"UPDATE {table} SET ref_key = :key WHERE id = :id"),
            [{"id": rid, "key": ref_key(ext, dn)} for rid, ext, dn in rows],
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET dn = idp_id WHERE dn IS NULL"))
        op.drop_index(f"ix_{table}_directory_id_ref_key", table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("ref_key", new_column_name="dn_key", existing_type=sa.Text())
            batch_op.alter_column("dn", existing_type=sa.Text(), nullable=False)
        op.create_index(f"ix_{table}_directory_id_dn_key", table, ["directory_id", "dn_key"])
