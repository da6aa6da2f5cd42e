"""The shop's tables. `order_status` is a lookup table that the migrations seed."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class OrderStatus(Base):
    __tablename__ = "order_status"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)
    label: Mapped[str] = mapped_column(sa.String(50))


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    price_cents: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)


class Order(Base):
    __tablename__ = "order"  # a reserved word: alembic-cleandb quotes every name

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    status_id: Mapped[int] = mapped_column(sa.ForeignKey("order_status.id"))

    status: Mapped[OrderStatus] = relationship()
    lines: Mapped[list[OrderLine]] = relationship(cascade="all, delete-orphan")


class OrderLine(Base):
    __tablename__ = "order_line"

    order_id: Mapped[int] = mapped_column(sa.ForeignKey("order.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("product.id"), primary_key=True)
    quantity: Mapped[int]
    price_cents: Mapped[int]

    product: Mapped[Product] = relationship()
