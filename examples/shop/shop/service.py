"""What the shop does. Every function commits its own transaction on the app's engine."""

from __future__ import annotations

import sqlalchemy as sa

from .db import session
from .models import Customer, Order, OrderLine, OrderStatus, Product


class ShopError(Exception):
    pass


def register_customer(email: str, name: str) -> Customer:
    with session() as s, s.begin():
        customer = Customer(email=email, name=name)
        s.add(customer)
    return customer


def add_product(sku: str, name: str, price_cents: int, stock: int = 0) -> Product:
    with session() as s, s.begin():
        product = Product(sku=sku, name=name, price_cents=price_cents, stock=stock)
        s.add(product)
    return product


def product(sku: str) -> Product:
    with session() as s:
        return s.scalars(sa.select(Product).where(Product.sku == sku)).one()


def status_codes() -> list[str]:
    with session() as s:
        return list(s.scalars(sa.select(OrderStatus.code).order_by(OrderStatus.id)))


def _status(s: sa.orm.Session, code: str) -> OrderStatus:
    return s.scalars(sa.select(OrderStatus).where(OrderStatus.code == code)).one()


def place_order(customer_id: int, items: dict[str, int]) -> Order:
    """Order ``{sku: quantity}``; takes the items out of stock."""
    with session() as s, s.begin():
        order = Order(customer_id=customer_id, status=_status(s, "new"))
        for sku, quantity in items.items():
            item = s.scalars(sa.select(Product).where(Product.sku == sku)).one()
            if item.stock < quantity:
                raise ShopError(f"only {item.stock} of {sku} left")
            item.stock -= quantity
            order.lines.append(
                OrderLine(product=item, quantity=quantity, price_cents=item.price_cents)
            )
        s.add(order)
    return order


def order_status(order_id: int) -> str:
    with session() as s:
        return s.get(Order, order_id).status.code  # type: ignore[union-attr]


def order_total(order_id: int) -> int:
    with session() as s:
        total = s.scalar(
            sa.select(sa.func.sum(OrderLine.quantity * OrderLine.price_cents)).where(
                OrderLine.order_id == order_id
            )
        )
    return int(total or 0)


def cancel(order_id: int) -> None:
    """Cancel an order and put its items back in stock."""
    with session() as s, s.begin():
        order = s.get(Order, order_id)
        if order is None:
            raise ShopError(f"no order {order_id}")
        if order.status.code == "cancelled":
            raise ShopError(f"order {order_id} is already cancelled")
        for line in order.lines:
            line.product.stock += line.quantity
        order.status = _status(s, "cancelled")


def retire_status(code: str) -> None:
    with session() as s, s.begin():
        s.execute(sa.delete(OrderStatus).where(OrderStatus.code == code))


def format_price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
