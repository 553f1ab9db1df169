"""Events and commands as bytes, for what crosses a process boundary (outbox, streams).

JSON with exact decimals as strings and times as integer microseconds: what goes in
comes out equal, field for field. One format for every adapter, so an event written to
the PostgreSQL outbox reads the same off a Redis stream. A trace context (tracing on) is
an optional `"trace"` object of strings; messages without one decode as before.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from app.core.commands import AddOrder, CancelOrder, OrderCommand
from app.core.decimals import fmt
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.events import EventKind, OrderEvent
from app.core.order import Fill, Order


class DecodeError(ValueError):
    """Bytes that are not an event or command of this format."""


def _order_fields(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id, "owner": order.owner,
        "client_order_id": order.client_order_id, "symbol": order.symbol,
        "side": order.side.value, "order_size": fmt(order.order_size),
        "price": None if order.price is None else fmt(order.price),
        "timeout_s": order.timeout_s,
        "status": order.status.value, "filled_qty": fmt(order.filled_qty),
        "notional": fmt(order.notional), "fill_count": order.fill_count,
        "reason": order.reason, "created_at_us": order.created_at_us,
        "updated_at_us": order.updated_at_us, "expires_at_us": order.expires_at_us,
        "type": order.type.value, "time_in_force": order.time_in_force.value,
        "fees": fmt(order.fees), "fee_asset": order.fee_asset,
        "reserve": None if order.reserve is None else fmt(order.reserve),
    }  # fmt: skip


def _order(fields: dict[str, Any]) -> Order:
    # The paper-account fields are read with their defaults: a message written before
    # they existed (a rolling upgrade) decodes as the limit GTT order it was.
    price = fields["price"]
    return Order(
        order_id=fields["order_id"], owner=fields["owner"],
        client_order_id=fields["client_order_id"], symbol=fields["symbol"],
        side=Side(fields["side"]), order_size=Decimal(fields["order_size"]),
        price=None if price is None else Decimal(price), timeout_s=fields["timeout_s"],
        status=OrderStatus(fields["status"]), filled_qty=Decimal(fields["filled_qty"]),
        notional=Decimal(fields["notional"]), fill_count=fields["fill_count"],
        reason=fields["reason"], created_at_us=fields["created_at_us"],
        updated_at_us=fields["updated_at_us"], expires_at_us=fields["expires_at_us"],
        type=OrderType(fields.get("type", "limit")),
        time_in_force=TimeInForce(fields.get("time_in_force", "GTT")),
        fees=Decimal(fields.get("fees", "0")), fee_asset=str(fields.get("fee_asset", "")),
        reserve=None if fields.get("reserve") is None else Decimal(fields["reserve"]),
    )  # fmt: skip


def _fill_fields(fill: Fill) -> dict[str, Any]:
    return {
        "seq": fill.seq, "update_id": fill.update_id, "price": fmt(fill.price),
        "qty": fmt(fill.qty), "ts_us": fill.ts_us, "fee": fmt(fill.fee),
        "fee_asset": fill.fee_asset,
    }  # fmt: skip


def _fill(fields: dict[str, Any]) -> Fill:
    return Fill(
        fields["seq"], fields["update_id"], Decimal(fields["price"]), Decimal(fields["qty"]),
        fields["ts_us"], Decimal(fields.get("fee", "0")), str(fields.get("fee_asset", "")),
    )  # fmt: skip


def _trace(body: dict[str, Any]) -> dict[str, str] | None:
    trace = body.get("trace")
    if trace is None:
        return None
    if type(trace) is not dict or not all(type(v) is str for v in trace.values()):
        raise ValueError("a trace context is an object of strings")
    return trace


def encode_event(event: OrderEvent) -> bytes:
    body: dict[str, Any] = {"kind": event.kind.value, "order": _order_fields(event.order)}
    if event.fill is not None:
        body["fill"] = _fill_fields(event.fill)
    if event.trace is not None:
        body["trace"] = event.trace
    return orjson.dumps(body)


def decode_event(data: bytes | str) -> OrderEvent:
    try:
        body = orjson.loads(data)
        fill = body.get("fill")
        return OrderEvent(
            EventKind(body["kind"]), _order(body["order"]), None if fill is None else _fill(fill),
            _trace(body),
        )  # fmt: skip
    except (
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        ArithmeticError,
        AttributeError,
    ) as exc:
        raise DecodeError(f"not an order event: {exc!r}") from exc


def encode_command(command: OrderCommand) -> bytes:
    if isinstance(command, AddOrder):
        body: dict[str, Any] = {"add": _order_fields(command.order)}
        if command.trace is not None:
            body["trace"] = command.trace
        return orjson.dumps(body)
    return orjson.dumps({"cancel": {"order_id": command.order_id, "symbol": command.symbol}})


def decode_command(data: bytes | str) -> OrderCommand:
    try:
        body = orjson.loads(data)
        if "add" in body:
            return AddOrder(_order(body["add"]), _trace(body))
        cancel = body["cancel"]
        return CancelOrder(str(cancel["order_id"]), str(cancel["symbol"]))
    except (
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        ArithmeticError,
        AttributeError,
    ) as exc:
        raise DecodeError(f"not an order command: {exc!r}") from exc
