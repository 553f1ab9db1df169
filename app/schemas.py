"""The JSON shapes of CONTRACT.md as pydantic models: requests in, orders out."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from app.clock import rfc3339
from app.core import rules
from app.core.decimals import avg_price, fmt
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.order import Fill, Order

_UPPER_BOUND = Decimal("1e20")
MAX_FRACTION_DIGITS = 18


def _strict_decimal(value: object) -> Decimal:
    """A finite decimal from a JSON number or string; never a bool, float or NaN."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal number or string, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        if not rules.is_decimal_text(value):
            raise ValueError(rules.DECIMAL_MESSAGE)
        number = Decimal(value)  # ASCII digits and one point: always a finite Decimal
    else:
        raise ValueError("must be a decimal number or string")
    if not number.is_finite():
        raise ValueError("must be finite")
    if number <= 0:
        raise ValueError("must be greater than 0")
    if number >= _UPPER_BOUND:
        raise ValueError("must be less than 10^20")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_FRACTION_DIGITS:
        raise ValueError(f"must have at most {MAX_FRACTION_DIGITS} digits after the point")
    return number


PositiveDecimal = Annotated[
    Decimal,
    BeforeValidator(_strict_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": rules.DECIMAL_PATTERN},
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1e19},
            ],
            "description": "> 0, < 10^20, at most 18 digits after the point",
        }
    ),
]


Symbol = Annotated[
    str,
    BeforeValidator(rules.symbol),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rules.SYMBOL_PATTERN,
            "description": "2-20 ASCII letters or digits, any case; stored upper case",
        }
    ),
]


def _cursor(value: object) -> object:
    if isinstance(value, str) and not rules.is_cursor(value):
        raise ValueError("not a cursor this service returned")
    return value


def _timeout(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds, not a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be finite")
        return float(value)
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


ClientOrderId = Annotated[str | None, Field(min_length=1, max_length=64)]


class LimitOrderRequest(BaseModel):
    """Body of POST /order/limit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    symbol: Symbol
    order_size: PositiveDecimal
    price: PositiveDecimal
    side: Annotated[Side, BeforeValidator(_lower)] = Side.SELL
    timeout_s: Annotated[float | None, BeforeValidator(_timeout)] = Field(
        None, gt=0, le=86400, allow_inf_nan=False
    )
    time_in_force: Annotated[TimeInForce, BeforeValidator(_upper)] = Field(
        TimeInForce.GTT,
        description="GTT rests until timeout_s; IOC takes what the current quote offers and "
        "the rest expires; FOK fills entirely from the current quote or expires unfilled",
    )
    client_order_id: ClientOrderId = None

    @property
    def type(self) -> OrderType:
        return OrderType.LIMIT


class MarketOrderRequest(BaseModel):
    """Body of POST /order/market: an IOC with no price limit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    symbol: Symbol
    side: Annotated[Side, BeforeValidator(_lower)]
    order_size: PositiveDecimal
    client_order_id: ClientOrderId = None

    @property
    def type(self) -> OrderType:
        return OrderType.MARKET

    @property
    def price(self) -> None:
        return None

    @property
    def timeout_s(self) -> None:
        return None  # ORDER_TIMEOUT_SECONDS: how long it may wait for a first quote

    @property
    def time_in_force(self) -> TimeInForce:
        return TimeInForce.IOC


class FillView(BaseModel):
    """A fill as CONTRACT.md shows it; `fill_json` builds it."""

    seq: int
    update_id: int
    price: str
    qty: str
    fee: str
    fee_asset: str
    ts: str


class OrderView(BaseModel):
    """The order object of CONTRACT.md; `order_json` builds it."""

    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    order_size: str
    price: str | None  # null for a market order
    status: OrderStatus
    filled_qty: str
    remaining_qty: str
    avg_price: str | None
    created_at: str
    updated_at: str
    expires_at: str
    reason: str | None
    fees: str  # the sum of the fills' fees, in fee_asset
    fee_asset: str
    fills: list[FillView] | None = None


# The models above are the documented shapes (OpenAPI, tests). Every order answer and every
# event is built from our own already-valid records, so the hot path writes the JSON dicts
# directly instead of constructing and dumping a model (a third of the cost of an intake);
# tests/test_schemas.py checks that each dict validates as its model and dumps back equal.


def fill_json(fill: Fill) -> dict[str, object]:
    return {
        "seq": fill.seq,
        "update_id": fill.update_id,
        "price": fmt(fill.price),
        "qty": fmt(fill.qty),
        "fee": fmt(fill.fee),
        "fee_asset": fill.fee_asset,
        "ts": rfc3339(fill.ts_us),
    }


def order_json(order: Order, *, with_fills: bool) -> dict[str, object]:
    """The order object; with its fills under `fills`, or without that key at all."""
    average = avg_price(order.notional, order.filled_qty)
    body: dict[str, object] = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "order_size": fmt(order.order_size),
        "price": None if order.price is None else fmt(order.price),
        "status": order.status.value,
        "filled_qty": fmt(order.filled_qty),
        "remaining_qty": fmt(order.remaining_qty),
        "avg_price": None if average is None else fmt(average),
        "created_at": rfc3339(order.created_at_us),
        "updated_at": rfc3339(order.updated_at_us),
        "expires_at": rfc3339(order.expires_at_us),
        "reason": order.reason,
        "fees": fmt(order.fees),
        "fee_asset": order.fee_asset,
    }
    if with_fills:
        body["fills"] = [fill_json(fill) for fill in order.fills]
    return body


class OrderList(BaseModel):
    orders: list[OrderView]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus | None = None
    symbol: Symbol | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[
        str | None,
        BeforeValidator(_cursor),
        WithJsonSchema({"type": "string", "pattern": rules.CURSOR_PATTERN}),
    ] = None
