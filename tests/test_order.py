"""The order's snapshot (what an event carries) is the order, field for field, minus fills."""

from __future__ import annotations

from dataclasses import fields, replace
from decimal import Decimal

import pytest

from app.core.domain import OrderStatus, Side
from app.core.order import Order


def test_a_snapshot_copies_every_field_but_the_fills() -> None:
    order = Order(
        order_id="o", owner="alice", client_order_id="k", symbol="BTCUSDT", side=Side.BUY,
        order_size=Decimal(3), price=Decimal(2), timeout_s=30.0,
        status=OrderStatus.PARTIALLY_FILLED, created_at_us=1, updated_at_us=4, expires_at_us=9,
        filled_qty=Decimal(1), notional=Decimal(2), fill_count=1, reason="why",
    )  # fmt: skip
    order.fills = [order.record_fill(7, Decimal(2), Decimal("0.5"), 5)]
    snapshot = order.snapshot()
    assert snapshot == replace(order, fills=[])  # every field, whatever fields Order has
    assert snapshot is not order and snapshot.fills == [] and order.fills
    order.record_fill(8, Decimal(2), Decimal("0.5"), 6)  # the snapshot does not move
    assert snapshot.fill_count == 2 and order.fill_count == 3
    assert {f.name for f in fields(Order)} >= {"fills", "reason", "notional"}


def _resting(order_id: str, size: str, price: str, owner: str = "alice") -> Order:
    return Order(
        order_id=order_id, owner=owner, client_order_id=None, symbol="".join(["BTC", "USDT"]),
        side=Side.SELL, order_size=Decimal(size), price=Decimal(price), timeout_s=float("30"),
        status=OrderStatus.OPEN, created_at_us=1, updated_at_us=1, expires_at_us=9,
    )  # fmt: skip


def test_orders_without_loaded_fills_share_one_empty_list_nobody_can_change() -> None:
    first, second = _resting("a", "1", "2"), _resting("b", "1", "2")
    assert first.fills is second.fills and first.fills == []
    with pytest.raises(TypeError):
        first.fills.append(first.record_fill(1, Decimal(2), Decimal("0.5"), 2))
    assert second.fills == [] and first.snapshot().fills is first.fills
    first.fills = [first.record_fill(2, Decimal(2), Decimal("0.5"), 3)]  # loaded: its own
    assert len(first.fills) == 1 and second.fills == []


def test_an_unfilled_order_rests_with_its_own_size_as_what_remains() -> None:
    order = _resting("a", "1.50", "2")
    assert order.remaining_qty is order.order_size
    order.record_fill(1, Decimal(2), Decimal("0.5"), 2)
    assert order.remaining_qty == Decimal(1) and order.order_size == Decimal("1.50")


def test_resting_orders_hold_equal_prices_sizes_and_names_once() -> None:
    first, second = _resting("a", "1.5", "100.25"), _resting("b", "1.5", "100.25")
    other = _resting("c", "2", "7", owner="bob")
    assert first.price is not second.price and first.symbol is not second.symbol
    for order in (first, second, other):
        order.share_common_values()
    assert first.price is second.price and first.order_size is second.order_size
    assert first.symbol is second.symbol and first.timeout_s is second.timeout_s
    assert other.price == Decimal(7) and other.order_size == Decimal(2) and other.owner == "bob"
    assert first.price == Decimal("100.25") and first.symbol == "BTCUSDT"
