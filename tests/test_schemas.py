"""The JSON the service writes directly is exactly the documented pydantic shape."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.order import Order
from app.schemas import FillView, OrderList, OrderView, fill_json, order_json


def _order(**changes: object) -> Order:
    order = Order(
        order_id="0" * 32, owner="alice", client_order_id=None, symbol="BTCUSDT",
        side=Side.BUY, order_size=Decimal("2.50"), price=Decimal("64000.10"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=1_764_000_000_000_001,
        updated_at_us=1_764_000_000_000_001, expires_at_us=1_764_000_030_000_001,
    )  # fmt: skip
    for name, value in changes.items():
        setattr(order, name, value)
    return order


def _filled_twice() -> Order:
    order = _order(client_order_id="my-key-1", fee_asset="BTC")
    atom = Decimal("0.000000000000000001")
    order.fills = [
        order.record_fill(
            11, Decimal("64000.1"), Decimal("1"), 1_764_000_000_500_000, Decimal("0.001")
        ),
        order.record_fill(12, Decimal("63999.95"), atom, 1_764_000_001_000_000, atom / 1000),
    ]
    return order


def _market_sell() -> Order:
    order = _order(
        side=Side.SELL, price=None, type=OrderType.MARKET, time_in_force=TimeInForce.IOC,
        fee_asset="USDT",
    )  # fmt: skip
    order.fills = [
        order.record_fill(13, Decimal("63999.5"), Decimal("2"), 1_764_000_000_600_000,
                          Decimal("0.127999")),
    ]  # fmt: skip
    order.finish(OrderStatus.EXPIRED, "expired: market order (IOC)", 1_764_000_000_600_000)
    return order


CASES = {
    "open, no fills": _order(),
    "partially filled, two fills": _filled_twice(),
    "expired with a reason": _order(status=OrderStatus.EXPIRED, reason="expired: not filled"),
    "a market sell, expired after a fill": _market_sell(),
    "a FOK limit order": _order(time_in_force=TimeInForce.FOK, fee_asset="BTC"),
    "at the bounds": _order(
        order_size=Decimal("99999999999999999999.999999999999999999"),
        price=Decimal("0.000000000000000001"),
    ),
}


@pytest.mark.parametrize("with_fills", [True, False])
@pytest.mark.parametrize("name", list(CASES))
def test_order_json_is_the_order_view(name: str, with_fills: bool) -> None:
    order = CASES[name]
    body = order_json(order, with_fills=with_fills)
    view = OrderView.model_validate(body)
    dumped = view.model_dump(mode="json", exclude=None if with_fills else {"fills"})
    assert dumped == body
    assert ("fills" in body) is with_fills
    assert list(body)[: len(OrderView.model_fields) - 1] == [
        name for name in OrderView.model_fields if name != "fills"
    ]


def test_the_values_are_the_contracts() -> None:
    body = order_json(_filled_twice(), with_fills=True)
    assert body["side"] == "buy" and body["status"] == "partially_filled"
    assert body["order_size"] == "2.5" and body["price"] == "64000.1"
    assert body["filled_qty"] == "1.000000000000000001"
    assert body["remaining_qty"] == "1.499999999999999999"
    assert body["created_at"] == "2025-11-24T16:00:00.000001Z"
    assert body["type"] == "limit" and body["time_in_force"] == "GTT"
    assert body["fees"] == "0.001000000000000000001" and body["fee_asset"] == "BTC"
    first, second = body["fills"]  # type: ignore[misc]
    assert first == {
        "seq": 1, "update_id": 11, "price": "64000.1", "qty": "1", "fee": "0.001",
        "fee_asset": "BTC", "ts": "2025-11-24T16:00:00.500000Z",
    }  # fmt: skip
    assert second == {
        "seq": 2, "update_id": 12, "price": "63999.95", "qty": "0.000000000000000001",
        "fee": "0.000000000000000000001", "fee_asset": "BTC",
        "ts": "2025-11-24T16:00:01.000000Z",
    }  # fmt: skip
    average = Decimal(str(body["avg_price"]))
    assert Decimal("63999.95") < average < Decimal("64000.1")


def test_a_market_order_has_no_price() -> None:
    body = order_json(_market_sell(), with_fills=True)
    assert body["price"] is None and body["type"] == "market"
    assert body["time_in_force"] == "IOC" and body["status"] == "expired"
    assert body["fees"] == "0.127999" and body["fee_asset"] == "USDT"
    assert body["avg_price"] == "63999.5"


def test_fill_json_is_the_fill_view() -> None:
    for fill in _filled_twice().fills:
        body = fill_json(fill)
        assert FillView.model_validate(body).model_dump(mode="json") == body


def test_a_list_page_is_an_order_list() -> None:
    page = {"orders": [order_json(o, with_fills=False) for o in CASES.values()], "next_cursor": "7"}
    listed = OrderList.model_validate(page)
    assert listed.model_dump(mode="json", exclude={"orders": {"__all__": {"fills"}}}) == page
