"""Orders, and one product every shop sells from day one (a seed row in a later migration).

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
    op.create_table(
        "order",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("status_id", sa.Integer, sa.ForeignKey("order_status.id"), nullable=False),
    )
    op.create_table(
        "order_line",
        sa.Column("order_id", sa.Integer, sa.ForeignKey("order.id"), primary_key=True),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("product.id"), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("price_cents", sa.Integer, nullable=False),
    )
    product = sa.table(
        "product",
        sa.column("sku"),
        sa.column("name"),
        sa.column("price_cents"),
        sa.column("stock"),
    )
    op.bulk_insert(
        product, [{"sku": "GIFT-25", "name": "Gift card", "price_cents": 2500, "stock": 100}]
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM product WHERE sku = 'GIFT-25'"))
    op.drop_table("order_line")
    op.drop_table("order")
