"""users and notices, with a welcome notice seeded for new installations

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=80), nullable=False),
    )
    notice = op.create_table(
        "notice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.String(length=200), nullable=False),
    )
    # Seed data the application wants in production - and its tests want gone (see
    # tests/conftest.py: deleted once, then set_baseline()).
    op.bulk_insert(notice, [{"text": "Welcome!"}])


def downgrade():
    op.drop_table("notice")
    op.drop_table("user")
