"""Binance's symbol filters (filters.md), read from one exchangeInfo `symbols[]` entry.

Pure and exact: every bound is a Decimal parsed from Binance's decimal strings, and a
"multiple of" test is an exact remainder. What is checked, as Binance does:

- `PRICE_FILTER` on a limit order's price: `minPrice`, `maxPrice`, `tickSize`, each off at 0.
- `LOT_SIZE` on every order's size (market orders too): `minQty`, `maxQty`, `stepSize`.
- `MARKET_LOT_SIZE` on a market order's size as well; BTCUSDT publishes `minQty` and
  `stepSize` 0, so a 0 turns that rule off here (for `LOT_SIZE` too: Binance never sends one).
- `NOTIONAL` (`minNotional`, `maxNotional`) and the older `MIN_NOTIONAL` (`minNotional`) on
  size times price. A market order has no price: Binance values it at the average price of the
  last `avgPriceMins` minutes; we value it at the best price the caller gives (the ask for a
  buy, the bid for a sell), only where `applyMinToMarket` / `applyMaxToMarket` /
  `applyToMarket` say so, and skip the check when no price is known.
- A symbol whose `status` is not `TRADING` takes no order (`unknown_symbol`).

Other filter types (PERCENT_PRICE_BY_SIDE, ICEBERG_PARTS, MAX_NUM_ORDERS, ...) are read past.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from app.core.decimals import EXACT, ZERO, fmt

TRADING = "TRADING"

FailureCode = Literal["filter_failure", "unknown_symbol"]

# Binance's decimal strings ("0.01000000"); integers are taken too, floats never (inexact).
_DECIMAL_TEXT = re.compile(r"^[0-9]{1,30}(\.[0-9]{1,30})?$")


class MalformedExchangeInfo(ValueError):
    """An exchangeInfo entry this module cannot read: a value missing or of the wrong form."""


@dataclass(frozen=True, slots=True)
class FilterFailure:
    """Why an order is refused: `code` is the API error code, `field` the request field at
    fault, `message` a sentence for the user that names the filter and what it allows."""

    code: FailureCode
    filter: str  # "PRICE_FILTER", "LOT_SIZE", ..., or "status"
    field: str  # "price", "order_size" or "symbol"
    message: str


@dataclass(frozen=True, slots=True)
class PriceFilter:
    min_price: Decimal  # 0: no minimum
    max_price: Decimal  # 0: no maximum
    tick_size: Decimal  # 0: any price


@dataclass(frozen=True, slots=True)
class LotSize:
    """`LOT_SIZE` or `MARKET_LOT_SIZE` (`name` says which)."""

    name: str
    min_qty: Decimal  # 0: no minimum
    max_qty: Decimal  # 0: no maximum
    step_size: Decimal  # 0: any size


@dataclass(frozen=True, slots=True)
class NotionalFilter:
    """`NOTIONAL` or `MIN_NOTIONAL` (`name` says which; the latter has no maximum)."""

    name: str
    min_notional: Decimal  # 0: no minimum
    max_notional: Decimal  # 0: no maximum
    apply_min_to_market: bool
    apply_max_to_market: bool
    avg_price_mins: int


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    price_filter: PriceFilter | None = None
    lot_size: LotSize | None = None
    market_lot_size: LotSize | None = None
    notional: tuple[NotionalFilter, ...] = ()  # NOTIONAL and/or MIN_NOTIONAL

    @property
    def trading(self) -> bool:
        return self.status == TRADING

    @classmethod
    def from_exchange_info(cls, entry: Mapping[str, Any]) -> SymbolInfo:
        """Read one `symbols[]` entry of `GET /api/v3/exchangeInfo`; MalformedExchangeInfo
        if a field this module uses is missing or not of Binance's form."""
        if not isinstance(entry, Mapping):
            raise MalformedExchangeInfo("a symbols[] entry must be an object")
        symbol = _text(entry, "symbol", "symbol")
        where = symbol
        status = _text(entry, "status", where)
        base_asset = _text(entry, "baseAsset", where)
        quote_asset = _text(entry, "quoteAsset", where)
        filters = entry.get("filters", [])
        if not isinstance(filters, list):
            raise MalformedExchangeInfo(f"{where}: filters must be a list")
        seen: set[str] = set()
        price_filter = lot_size = market_lot_size = None
        notional: list[NotionalFilter] = []
        for raw in filters:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("filterType"), str):
                raise MalformedExchangeInfo(f"{where}: a filter must be an object with filterType")
            kind = raw["filterType"]
            if kind not in _KNOWN:
                continue
            if kind in seen:
                raise MalformedExchangeInfo(f"{where}: {kind} is listed twice")
            seen.add(kind)
            at = f"{where} {kind}"
            if kind == "PRICE_FILTER":
                price_filter = PriceFilter(
                    _decimal(raw, "minPrice", at),
                    _decimal(raw, "maxPrice", at),
                    _decimal(raw, "tickSize", at),
                )
            elif kind in ("LOT_SIZE", "MARKET_LOT_SIZE"):
                lot = LotSize(
                    kind,
                    _decimal(raw, "minQty", at),
                    _decimal(raw, "maxQty", at),
                    _decimal(raw, "stepSize", at),
                )
                if kind == "LOT_SIZE":
                    lot_size = lot
                else:
                    market_lot_size = lot
            elif kind == "NOTIONAL":
                notional.append(
                    NotionalFilter(
                        kind,
                        _decimal(raw, "minNotional", at),
                        _decimal(raw, "maxNotional", at, default=ZERO),
                        _flag(raw, "applyMinToMarket", at),
                        _flag(raw, "applyMaxToMarket", at),
                        _minutes(raw, at),
                    )
                )
            else:  # MIN_NOTIONAL
                notional.append(
                    NotionalFilter(
                        kind,
                        _decimal(raw, "minNotional", at),
                        ZERO,
                        _flag(raw, "applyToMarket", at),
                        False,
                        _minutes(raw, at),
                    )
                )
        return cls(
            symbol=symbol,
            status=status,
            base_asset=base_asset,
            quote_asset=quote_asset,
            price_filter=price_filter,
            lot_size=lot_size,
            market_lot_size=market_lot_size,
            notional=tuple(notional),
        )


_KNOWN = frozenset({"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL", "MIN_NOTIONAL"})

# -- the checks ------------------------------------------------------------------------------


def unknown_symbol(symbol: str) -> FilterFailure:
    """The failure for a symbol exchange info does not list."""
    return FilterFailure(
        "unknown_symbol", "status", "symbol", f"{symbol} is not a symbol Binance lists"
    )


def check_limit(info: SymbolInfo, price: Decimal, qty: Decimal) -> FilterFailure | None:
    """None if Binance would take a limit order of `qty` at `price`, else the first failure
    (status, PRICE_FILTER, LOT_SIZE, then the notional filters)."""
    return (
        _check_status(info)
        or _check_price(info.price_filter, price)
        or _check_lot(info.lot_size, qty)
        or _check_notional(info.notional, qty, price, market=False)
    )


def check_market(
    info: SymbolInfo, qty: Decimal, best_price: Decimal | None = None
) -> FilterFailure | None:
    """None if Binance would take a market order of `qty`, else the first failure (status,
    LOT_SIZE, MARKET_LOT_SIZE, then the notional filters that apply to market orders, valued
    at `best_price`: the ask for a buy, the bid for a sell; not checked when it is None)."""
    failure = (
        _check_status(info)
        or _check_lot(info.lot_size, qty)
        or _check_lot(info.market_lot_size, qty)
    )
    if failure is None and best_price is not None:
        failure = _check_notional(info.notional, qty, best_price, market=True)
    return failure


def _check_status(info: SymbolInfo) -> FilterFailure | None:
    if info.trading:
        return None
    return FilterFailure(
        "unknown_symbol",
        "status",
        "symbol",
        f"{info.symbol} is not trading on Binance now (status {info.status})",
    )


def _check_price(rule: PriceFilter | None, price: Decimal) -> FilterFailure | None:
    if rule is None or _within(price, rule.min_price, rule.max_price, rule.tick_size):
        return None
    allowed = _allowed(rule.min_price, rule.max_price, rule.tick_size)
    return FilterFailure(
        "filter_failure", "PRICE_FILTER", "price", f"PRICE_FILTER: price must be {allowed}"
    )


def _check_lot(rule: LotSize | None, qty: Decimal) -> FilterFailure | None:
    if rule is None or _within(qty, rule.min_qty, rule.max_qty, rule.step_size):
        return None
    allowed = _allowed(rule.min_qty, rule.max_qty, rule.step_size)
    return FilterFailure(
        "filter_failure", rule.name, "order_size", f"{rule.name}: order_size must be {allowed}"
    )


def _check_notional(
    rules: tuple[NotionalFilter, ...], qty: Decimal, price: Decimal, *, market: bool
) -> FilterFailure | None:
    value = EXACT.multiply(qty, price)
    for rule in rules:
        low = rule.min_notional if rule.apply_min_to_market or not market else ZERO
        high = rule.max_notional if rule.apply_max_to_market or not market else ZERO
        if _within(value, low, high, ZERO):
            continue
        valued = f"order_size times best price {fmt(price)}" if market else "order_size times price"
        return FilterFailure(
            "filter_failure",
            rule.name,
            "order_size",
            f"{rule.name}: {valued} must be {_allowed(low, high, ZERO)} (it is {fmt(value)})",
        )
    return None


def _within(value: Decimal, low: Decimal, high: Decimal, step: Decimal) -> bool:
    if low and value < low:
        return False
    if high and value > high:
        return False
    return not step or not EXACT.remainder(value, step)


def _allowed(low: Decimal, high: Decimal, step: Decimal) -> str:
    """What a filter allows, in words: "a multiple of 0.01 between 0.01 and 1000000"."""
    parts = [f"a multiple of {fmt(step)}"] if step else []
    if low and high:
        parts.append(f"between {fmt(low)} and {fmt(high)}")
    elif low:
        parts.append(f"at least {fmt(low)}")
    elif high:
        parts.append(f"at most {fmt(high)}")
    return " ".join(parts) or "any value"


# -- reading values --------------------------------------------------------------------------


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedExchangeInfo(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def _decimal(
    raw: Mapping[str, Any], key: str, where: str, *, default: Decimal | None = None
) -> Decimal:
    value = raw.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)
    raise MalformedExchangeInfo(
        f"{where}: {key} must be a non-negative decimal string, got {value!r}"
    )


def _flag(raw: Mapping[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise MalformedExchangeInfo(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _minutes(raw: Mapping[str, Any], where: str) -> int:
    value = raw.get("avgPriceMins", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedExchangeInfo(
            f"{where}: avgPriceMins must be a non-negative integer, got {value!r}"
        )
    return value
