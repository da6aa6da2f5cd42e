"""Tests of the shop that rely on alembic-cleandb: no fixture cleans anything up.

Each test talks to the database only through the application's own engine (shop.db, which
reads DATABASE_URL). After every test the plugin resets what it wrote, so every test starts
from what the migrations left: four order statuses, one gift card, nothing else - and ids
start at 1 again. The tests pass in any order, and under ``pytest -n 4``.
"""

import pytest

from shop import service


def test_first_customer_gets_id_1():
    assert service.register_customer("ada@example.com", "Ada").id == 1


def test_first_customer_gets_id_1_again():
    # The previous test's customer is gone and the counter restarted.
    assert service.register_customer("grace@example.com", "Grace").id == 1


def test_same_email_twice_in_two_tests_is_fine():
    # Would hit the unique constraint if the previous tests' rows had survived.
    service.register_customer("ada@example.com", "Ada again")


def test_place_order_takes_stock():
    customer = service.register_customer("ada@example.com", "Ada")
    service.add_product("MUG", "Mug", price_cents=1200, stock=5)
    order = service.place_order(customer.id, {"MUG": 2, "GIFT-25": 1})
    assert order.id == 1
    assert service.order_total(order.id) == 2 * 1200 + 2500
    assert service.product("MUG").stock == 3
    assert service.product("GIFT-25").stock == 99  # a seeded row, changed by this test


def test_seeded_product_is_back_to_its_baseline():
    # The test above sold a gift card: the seeded row is restored, not deleted.
    assert service.product("GIFT-25").stock == 100


def test_cancel_puts_items_back():
    customer = service.register_customer("ada@example.com", "Ada")
    order = service.place_order(customer.id, {"GIFT-25": 3})
    service.cancel(order.id)
    assert service.order_status(order.id) == "cancelled"
    assert service.product("GIFT-25").stock == 100
    with pytest.raises(service.ShopError):
        service.cancel(order.id)


def test_not_enough_stock():
    customer = service.register_customer("ada@example.com", "Ada")
    with pytest.raises(service.ShopError, match="only 100 of GIFT-25 left"):
        service.place_order(customer.id, {"GIFT-25": 101})


def test_a_test_may_even_delete_lookup_rows():
    service.retire_status("shipped")
    assert service.status_codes() == ["new", "paid", "cancelled"]


def test_lookup_rows_are_back():
    assert service.status_codes() == ["new", "paid", "shipped", "cancelled"]


@pytest.mark.cleandb_skip  # touches no database: no reset call after it
def test_format_price():
    assert service.format_price(2500) == "25.00"
    assert service.format_price(1205) == "12.05"
