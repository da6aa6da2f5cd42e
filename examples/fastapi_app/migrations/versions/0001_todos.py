"""priorities (seeded) and todos

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    priority = op.create_table(
        "priority",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20), nullable=False, unique=True),
    )
    op.bulk_insert(
        priority,
        [{"id": 1, "name": "low"}, {"id": 2, "name": "normal"}, {"id": 3, "name": "high"}],
    )
    op.create_table(
        "todo",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("priority_id", sa.Integer, sa.ForeignKey("priority.id"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("todo")
    op.drop_table("priority")
