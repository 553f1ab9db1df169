"""Events and commands cross process boundaries unchanged."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from app.adapters.codec import (
    DecodeError,
    decode_command,
    decode_event,
    encode_command,
    encode_event,
)
from app.core.commands import AddOrder, CancelOrder
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
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


TRACE = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=x",
}


def test_a_trace_context_travels_with_a_command_and_an_event() -> None:
    add = decode_command(encode_command(AddOrder(_order(), TRACE)))
    assert isinstance(add, AddOrder)
    assert add.trace == TRACE and add.order == _order()
    order = _order()
    fill = order.record_fill(77, Decimal("1"), Decimal("0.5"), 9)
    event = decode_event(encode_event(order_event(EventKind.FILL, order, fill, TRACE)))
    assert event.trace == TRACE and event.fill == fill


def test_without_a_trace_context_nothing_is_written_and_old_messages_decode() -> None:
    assert b"trace" not in encode_command(AddOrder(_order()))
    assert b"trace" not in encode_event(order_event(EventKind.ACCEPTED, _order()))
    # As written before trace contexts existed: the same bytes, decoded with none.
    old_command = orjson.dumps({"add": orjson.loads(encode_command(AddOrder(_order())))["add"]})
    add = decode_command(old_command)
    assert isinstance(add, AddOrder) and add.trace is None and add == AddOrder(_order())
    assert decode_event(encode_event(order_event(EventKind.ACCEPTED, _order()))).trace is None


def test_a_trace_context_is_not_part_of_what_happened() -> None:
    event = order_event(EventKind.ACCEPTED, _order())
    assert order_event(EventKind.ACCEPTED, _order(), trace=TRACE) == event
    assert AddOrder(_order(), TRACE) == AddOrder(_order())


@pytest.mark.parametrize("trace", [b'"x"', b"[1]", b'{"traceparent": 1}'])
def test_a_malformed_trace_context_is_a_decode_error(trace: bytes) -> None:
    def with_trace(message: bytes) -> bytes:
        return message[:-1] + b',"trace":' + trace + b"}"

    with pytest.raises(DecodeError):
        decode_command(with_trace(encode_command(AddOrder(_order()))))
    with pytest.raises(DecodeError):
        decode_event(with_trace(encode_event(order_event(EventKind.ACCEPTED, _order()))))


def test_market_orders_time_in_force_and_fees_round_trip() -> None:
    order = _order()
    order.price, order.type, order.time_in_force = None, OrderType.MARKET, TimeInForce.IOC
    order.fee_asset = "BTC"
    fill = order.record_fill(78, Decimal("61850.5"), Decimal("0.5"), 9, Decimal("0.0005"))
    event = order_event(EventKind.FILL, order, fill)
    back = decode_event(encode_event(event))
    assert back == event
    assert back.order.price is None and back.order.fees == Decimal("0.0005")
    assert back.fill is not None and (back.fill.fee, back.fill.fee_asset) == (D5, "BTC")
    fok = _order()
    fok.time_in_force = TimeInForce.FOK
    assert decode_command(encode_command(AddOrder(fok))) == AddOrder(fok)


def test_a_market_buys_reserve_travels_with_its_command() -> None:
    order = _order()
    order.price, order.type, order.time_in_force = None, OrderType.MARKET, TimeInForce.IOC
    order.reserve = Decimal("10500.000000000000000001")
    back = decode_command(encode_command(AddOrder(order)))
    assert isinstance(back, AddOrder) and back.order.reserve == order.reserve
    limit = decode_event(encode_event(order_event(EventKind.ACCEPTED, _order())))
    assert limit.order.reserve is None


def test_an_event_written_before_the_paper_account_decodes_as_a_limit_gtt_order() -> None:
    body = orjson.loads(encode_event(order_event(EventKind.ACCEPTED, _order())))
    for name in ("type", "time_in_force", "fees", "fee_asset"):
        del body["order"][name]
    back = decode_event(orjson.dumps(body))
    assert (back.order.type, back.order.time_in_force) == (OrderType.LIMIT, TimeInForce.GTT)
    assert back.order.fees == 0 and back.order.fee_asset == ""


D5 = Decimal("0.0005")
