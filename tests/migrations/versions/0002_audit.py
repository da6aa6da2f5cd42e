"""A later migration: a new table, and one more seed row in an existing table.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("id", Key, primary_key=True, autoincrement=True),
        sa.Column("what", sa.String(100), nullable=False),
    )
    status = sa.table(
        "lookup_status",
        sa.column("id", Key),
        sa.column("code", sa.String),
        sa.column("label", sa.String),
    )
    op.bulk_insert(status, [{"id": 4, "code": "cancelled", "label": "Cancelled"}])
    if op.get_context().dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('lookup_status', 'id'), 4)")


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM lookup_status WHERE id = 4"))
    op.drop_table("audit_entry")
