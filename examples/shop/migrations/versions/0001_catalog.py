"""Catalog: customers, products, and the order_status lookup table with its rows.

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
    status = op.create_table(
        "order_status",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(20), nullable=False, unique=True),
        sa.Column("label", sa.String(50), nullable=False),
    )
    op.bulk_insert(
        status,
        [
            {"code": "new", "label": "New"},
            {"code": "paid", "label": "Paid"},
            {"code": "shipped", "label": "Shipped"},
            {"code": "cancelled", "label": "Cancelled"},
        ],
    )
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(200), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.create_table(
        "product",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sku", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("price_cents", sa.Integer, nullable=False),
        sa.Column("stock", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("product")
    op.drop_table("customer")
    op.drop_table("order_status")
