"""The order's snapshot (what an event carries) is the order, field for field, minus fills."""

from __future__ import annotations

from dataclasses import fields, replace
from decimal import Decimal

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
