"""Events and commands cross process boundaries unchanged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.adapters.codec import (
    DecodeError,
    decode_command,
    decode_event,
    encode_command,
    encode_event,
)
from app.core.commands import AddOrder, CancelOrder
from app.core.domain import OrderStatus, Side
from app.core.events import EventKind, order_event
from app.core.order import Order


def _order() -> Order:
    return Order(
        order_id="o1", owner="alice", client_order_id="k-1", symbol="BTCUSDT", side=Side.BUY,
        order_size=Decimal("12345678901234567890.123456789012345678"),
        price=Decimal("0.000000000000000001"), timeout_s=2.5, status=OrderStatus.OPEN,
        created_at_us=1, updated_at_us=2, expires_at_us=3,
    )  # fmt: skip


def test_an_event_round_trips_field_for_field() -> None:
    order = _order()
    fill = order.record_fill(77, Decimal("0.000000000000000001"), Decimal("0.5"), 9)
    for event in (order_event(EventKind.FILL, order, fill), order_event(EventKind.ACCEPTED, order)):
        back = decode_event(encode_event(event))
        assert back == event
        assert back.order.order_size == Decimal("12345678901234567890.123456789012345678")


def test_commands_round_trip() -> None:
    add = AddOrder(_order())
    assert decode_command(encode_command(add)) == add
    cancel = CancelOrder("o1", "BTCUSDT")
    assert decode_command(encode_command(cancel)) == cancel


@pytest.mark.parametrize("garbage", [b"", b"[]", b'{"kind": "nope"}', b'{"cancel": {}}', b"\xff"])
def test_garbage_is_a_decode_error(garbage: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(garbage)
    with pytest.raises(DecodeError):
        decode_command(garbage)
