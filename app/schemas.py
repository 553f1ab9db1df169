"""The JSON shapes of CONTRACT.md as pydantic models: requests in, orders out."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from app.clock import rfc3339
from app.core import rules
from app.core.decimals import avg_price, fmt
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.order import Fill, Order
from app.ports import OwnedFill

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


class OrderFields(NamedTuple):
    """A valid body of POST /order/limit, as `LimitOrderRequest` would hold it."""

    symbol: str
    order_size: Decimal
    price: Decimal
    side: Side
    timeout_s: float | None
    client_order_id: str | None
    time_in_force: TimeInForce = TimeInForce.GTT
    type: OrderType = OrderType.LIMIT


_REQUEST_FIELDS = frozenset(LimitOrderRequest.model_fields)
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_TIME_IN_FORCE = {tif.value: tif for tif in TimeInForce}
_MAX_TIMEOUT_S = 86400


def limit_order_request(body: dict[str, Any]) -> OrderFields | LimitOrderRequest:
    """The order a body asks for, validated once.

    The usual body (decimal strings or integers, a plain side, a whole or exact timeout)
    is checked here directly, by the same rules as `LimitOrderRequest` (the same functions
    where there are any); anything else, every invalid body among it, is left to the model,
    so each error (a 422 naming its field) is the model's own. Raises ValidationError.
    """
    fields = _exact_fields(body)
    return LimitOrderRequest.model_validate(body) if fields is None else fields


def _plain_positive_decimal(value: object) -> Decimal | None:
    """`_strict_decimal(value)` for a valid value; None for any other (or a rare type)."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if not rules.is_decimal_text(text):
            return None
        whole, _, fraction = text.partition(".")
        whole, fraction = whole.lstrip("0"), fraction.rstrip("0")
        # > 0, < 10^20 (at most 20 digits before the point), at most 18 after it.
        if not (whole or fraction) or len(whole) > 20 or len(fraction) > MAX_FRACTION_DIGITS:
            return None
        return Decimal(text)
    if kind is int or kind is Decimal:
        try:
            return _strict_decimal(value)
        except ValueError:
            return None
    return None


def _exact_fields(body: dict[str, Any]) -> OrderFields | None:
    """OrderFields when the body is valid and plain; None to let the model decide."""
    if not _REQUEST_FIELDS.issuperset(body):
        return None
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not rules.is_symbol(symbol):
        return None
    side_text = body.get("side", "sell")
    side = _SIDES.get(side_text.lower()) if type(side_text) is str else None
    if side is None:
        return None
    timeout = body.get("timeout_s")
    timeout_s: float | None = None
    if timeout is not None:
        if type(timeout) is int:
            if not 0 < timeout <= _MAX_TIMEOUT_S:
                return None
        elif type(timeout) is not Decimal or not timeout.is_finite():
            return None
        timeout_s = float(timeout)  # as the model: a finite Decimal becomes its float
        if not 0 < timeout_s <= _MAX_TIMEOUT_S:
            return None
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and (
        type(client_order_id) is not str
        or not 1 <= len(client_order_id) <= 64
        or client_order_id.strip() != client_order_id  # the model strips whitespace first
    ):
        return None
    tif_text = body.get("time_in_force", "GTT")
    time_in_force = _TIME_IN_FORCE.get(tif_text.upper()) if type(tif_text) is str else None
    if time_in_force is None:
        return None
    order_size = _plain_positive_decimal(body.get("order_size"))
    price = _plain_positive_decimal(body.get("price"))
    if order_size is None or price is None:
        return None
    return OrderFields(
        symbol.upper(), order_size, price, side, timeout_s, client_order_id, time_in_force
    )


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
    size = fmt(order.order_size)
    created = rfc3339(order.created_at_us)
    filled = order.filled_qty
    if filled:
        average = avg_price(order.notional, filled)
        filled_text, remaining = fmt(filled), fmt(order.remaining_qty)
        average_text = None if average is None else fmt(average)
    else:  # not filled yet (an order just accepted): nothing more to compute
        filled_text, remaining, average_text = "0", size, None
    updated = order.updated_at_us
    body: dict[str, object] = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "order_size": size,
        "price": None if order.price is None else fmt(order.price),
        "status": order.status.value,
        "filled_qty": filled_text,
        "remaining_qty": remaining,
        "avg_price": average_text,
        "created_at": created,
        "updated_at": created if updated == order.created_at_us else rfc3339(updated),
        "expires_at": rfc3339(order.expires_at_us),
        "reason": order.reason,
        "fees": fmt(order.fees) if order.fees else "0",
        "fee_asset": order.fee_asset,
    }
    if with_fills:
        body["fills"] = [fill_json(fill) for fill in order.fills]
    return body


class OrderList(BaseModel):
    orders: list[OrderView]
    next_cursor: str | None


class OwnedFillView(BaseModel):
    """One row of GET /fills (JSON or CSV, these fields in this order); `owned_fill_json`
    builds it."""

    order_id: str
    symbol: str
    side: Side
    seq: int
    update_id: int
    price: str
    qty: str
    fee: str
    fee_asset: str
    ts: str


# The CSV export's header line, and the order of every row's values.
FILL_EXPORT_FIELDS: tuple[str, ...] = tuple(OwnedFillView.model_fields)


class FillList(BaseModel):
    """GET /fills: the owner's fills, newest stored first; `next_cursor` null on the last
    page."""

    fills: list[OwnedFillView]
    next_cursor: str | None


def owned_fill_json(row: OwnedFill) -> dict[str, object]:
    """A row of GET /fills: the fill's object with its order's id, symbol and side first."""
    return {"order_id": row.order_id, "symbol": row.symbol, "side": row.side.value,
            **fill_json(row.fill)}  # fmt: skip


class BalanceView(BaseModel):
    """One asset of an owner's paper balances (CONTRACT.md, "Paper account")."""

    asset: str
    free: str  # may be below 0 when PAPER_BALANCES is empty
    locked: str  # what the owner's open orders need


class PositionView(BaseModel):
    """An owner's position in one symbol: average cost, fees excluded from the P&L."""

    symbol: str
    qty: str  # base asset bought minus sold
    avg_entry_price: str | None  # null when flat
    realized_pnl: str
    unrealized_pnl: str | None  # against the latest bid (long) or ask (short); null: none
    fees: str  # every fee of the symbol, valued in the quote asset


class AccountResponse(BaseModel):
    """GET /account, and the /ws account channel's `{"type": "account", ...}`;
    `app.core.account.account_view` builds it."""

    balances: list[BalanceView]
    positions: list[PositionView]


class SymbolView(BaseModel):
    """GET /symbols/{symbol}: what the page and the terminal round to. Filter bounds that
    Binance leaves off (0) are null; all null when exchange info could not be read."""

    symbol: str
    status: str | None
    base_asset: str
    quote_asset: str
    tick_size: str | None
    step_size: str | None
    min_qty: str | None
    min_notional: str | None
    source: Literal["exchange_info", "unavailable", "off"]


class QuotePointView(BaseModel):
    ts: str
    bid: str | None
    ask: str | None


class BookHistoryView(BaseModel):
    """GET /book/{symbol}/history: the first quote of each second, oldest first."""

    symbol: str
    seconds: int
    points: list[QuotePointView]


class CancelledOrders(BaseModel):
    """The answer of DELETE /orders: the orders it cancelled, with the fills they kept."""

    cancelled: list[OrderView]


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


class CancelAllQuery(BaseModel):
    """The query of DELETE /orders: every open order of the owner, or of one symbol."""

    model_config = ConfigDict(extra="forbid")

    symbol: Symbol | None = None


class FillsQuery(BaseModel):
    """GET /fills' query: the cursor is a page's `next_cursor`, as for GET /orders."""

    model_config = ConfigDict(extra="forbid")

    symbol: Symbol | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[
        str | None,
        BeforeValidator(_cursor),
        WithJsonSchema({"type": "string", "pattern": rules.CURSOR_PATTERN}),
    ] = None
