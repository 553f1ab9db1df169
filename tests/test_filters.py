"""Binance's symbol filters (app/core/filters.py): reading exchangeInfo, checking orders."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.filters import (
    FilterFailure,
    LotSize,
    MalformedExchangeInfo,
    NotionalFilter,
    PriceFilter,
    SymbolInfo,
    check_limit,
    check_market,
    unknown_symbol,
)
from app.emulator.exchange_info import default_exchange_symbols

D = Decimal


def btcusdt() -> dict[str, Any]:
    return default_exchange_symbols()["BTCUSDT"]


def info(**changes: Any) -> SymbolInfo:
    base = SymbolInfo.from_exchange_info(btcusdt())
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    return SymbolInfo(**{**fields, **changes})


def with_filter(entry: dict[str, Any], kind: str, **values: Any) -> dict[str, Any]:
    entry = copy.deepcopy(entry)
    for raw in entry["filters"]:
        if raw["filterType"] == kind:
            raw.update(values)
    return entry


# -- reading exchangeInfo ---------------------------------------------------------------------


def test_btcusdt_as_binance_publishes_it() -> None:
    parsed = SymbolInfo.from_exchange_info(btcusdt())
    assert (parsed.symbol, parsed.status, parsed.base_asset, parsed.quote_asset) == (
        "BTCUSDT",
        "TRADING",
        "BTC",
        "USDT",
    )
    assert parsed.trading
    assert parsed.price_filter == PriceFilter(D("0.01"), D("1000000"), D("0.01"))
    assert parsed.lot_size == LotSize("LOT_SIZE", D("0.00001"), D("9000"), D("0.00001"))
    assert parsed.market_lot_size == LotSize("MARKET_LOT_SIZE", D(0), D("83.7657243"), D(0))
    assert parsed.notional == (NotionalFilter("NOTIONAL", D(5), D(9000000), True, False, 5),)


def test_min_notional_and_unknown_filter_types() -> None:
    entry = {
        "symbol": "OLDBTC",
        "status": "TRADING",
        "baseAsset": "OLD",
        "quoteAsset": "BTC",
        "filters": [
            {"filterType": "SOMETHING_NEW", "whatever": [1, 2]},
            {
                "filterType": "MIN_NOTIONAL",
                "minNotional": "0.00010000",
                "applyToMarket": True,
                "avgPriceMins": 5,
            },
        ],
    }
    parsed = SymbolInfo.from_exchange_info(entry)
    assert parsed.price_filter is None and parsed.lot_size is None
    assert parsed.notional == (NotionalFilter("MIN_NOTIONAL", D("0.0001"), D(0), True, False, 5),)


@pytest.mark.parametrize(
    ("kind", "values", "named"),
    [
        ("PRICE_FILTER", {"tickSize": "abc"}, "tickSize"),
        ("PRICE_FILTER", {"tickSize": 0.01}, "tickSize"),  # a float: not exact
        ("LOT_SIZE", {"minQty": "-1"}, "minQty"),
        ("LOT_SIZE", {"stepSize": None}, "stepSize"),
        ("LOT_SIZE", {"maxQty": "1e3"}, "maxQty"),
        ("NOTIONAL", {"applyMinToMarket": "true"}, "applyMinToMarket"),
        ("NOTIONAL", {"avgPriceMins": -5}, "avgPriceMins"),
        ("NOTIONAL", {"minNotional": True}, "minNotional"),
    ],
)
def test_malformed_values_are_refused_by_name(
    kind: str, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(MalformedExchangeInfo, match=f"BTCUSDT {kind}: {named}"):
        SymbolInfo.from_exchange_info(with_filter(btcusdt(), kind, **values))


def test_malformed_entries_are_refused() -> None:
    for key in ("symbol", "status", "baseAsset", "quoteAsset"):
        entry = btcusdt()
        del entry[key]
        with pytest.raises(MalformedExchangeInfo, match=key):
            SymbolInfo.from_exchange_info(entry)
    entry = btcusdt()
    entry["filters"].append(dict(entry["filters"][0]))
    with pytest.raises(MalformedExchangeInfo, match="PRICE_FILTER is listed twice"):
        SymbolInfo.from_exchange_info(entry)
    entry = btcusdt()
    entry["filters"].append({"minQty": "1"})
    with pytest.raises(MalformedExchangeInfo, match="filterType"):
        SymbolInfo.from_exchange_info(entry)
    with pytest.raises(MalformedExchangeInfo):
        SymbolInfo.from_exchange_info(["BTCUSDT"])  # type: ignore[arg-type]


# -- limit orders -------------------------------------------------------------------------------


def test_a_good_btcusdt_limit_order_passes() -> None:
    assert check_limit(info(), D("64000.01"), D("0.00100")) is None
    assert check_limit(info(), D("0.01"), D("9000")) is None  # notional 90 ≥ 5


@pytest.mark.parametrize(
    ("price", "qty", "failed", "field", "message"),
    [
        ("64000.001", "0.001", "PRICE_FILTER", "price",
         "PRICE_FILTER: price must be a multiple of 0.01 between 0.01 and 1000000"),
        ("0.001", "1", "PRICE_FILTER", "price", None),
        ("1000000.01", "0.001", "PRICE_FILTER", "price", None),
        ("64000", "0.000015", "LOT_SIZE", "order_size",
         "LOT_SIZE: order_size must be a multiple of 0.00001 between 0.00001 and 9000"),
        ("64000", "9000.00001", "LOT_SIZE", "order_size", None),
        ("64000", "0", "LOT_SIZE", "order_size", None),
        ("100", "0.04999", "NOTIONAL", "order_size",
         "NOTIONAL: order_size times price must be between 5 and 9000000 (it is 4.999)"),
        ("1000000", "9.00001", "NOTIONAL", "order_size", None),
    ],
)  # fmt: skip
def test_limit_order_failures_name_the_filter(
    price: str, qty: str, failed: str, field: str, message: str | None
) -> None:
    failure = check_limit(info(), D(price), D(qty))
    assert failure is not None
    assert (failure.code, failure.filter, failure.field) == ("filter_failure", failed, field)
    if message is not None:
        assert failure.message == message


def test_zero_turns_a_price_rule_off() -> None:
    free = info(price_filter=PriceFilter(D(0), D(0), D(0)))
    assert check_limit(free, D("123.456789"), D(1)) is None
    only_max = info(price_filter=PriceFilter(D(0), D(200), D(0)))
    failure = check_limit(only_max, D("200.5"), D(1))
    assert failure is not None and failure.message == "PRICE_FILTER: price must be at most 200"
    only_min = info(price_filter=PriceFilter(D(10), D(0), D(0)))
    failure = check_limit(only_min, D("9.99"), D(1))
    assert failure is not None and failure.message == "PRICE_FILTER: price must be at least 10"


def test_not_trading_is_an_unknown_symbol() -> None:
    for status in ("BREAK", "HALT", "END_OF_DAY"):
        halted = info(status=status)
        for failure in (check_limit(halted, D(64000), D(1)), check_market(halted, D(1), None)):
            assert failure == FilterFailure(
                "unknown_symbol",
                "status",
                "symbol",
                f"BTCUSDT is not trading on Binance now (status {status})",
            )
    assert unknown_symbol("NOPE").code == "unknown_symbol"


def test_min_notional_applies_to_limit_orders_only_as_a_minimum() -> None:
    old = info(notional=(NotionalFilter("MIN_NOTIONAL", D(10), D(0), False, False, 5),))
    failure = check_limit(old, D(100), D("0.09"))
    assert failure is not None and failure.filter == "MIN_NOTIONAL"
    assert failure.message == "MIN_NOTIONAL: order_size times price must be at least 10 (it is 9)"
    assert check_limit(old, D(1000000), D(9000)) is None  # no maximum


# -- market orders ------------------------------------------------------------------------------


def test_market_orders_get_lot_size_and_market_lot_size() -> None:
    assert check_market(info(), D("0.00123"), None) is None
    failure = check_market(info(), D("0.000011"), None)
    assert failure is not None and failure.filter == "LOT_SIZE"  # LOT_SIZE binds market orders too
    failure = check_market(info(), D("83.77"), None)
    assert failure is not None and failure.filter == "MARKET_LOT_SIZE"
    assert failure.message == "MARKET_LOT_SIZE: order_size must be at most 83.7657243"
    assert check_limit(info(), D(64000), D("83.77")) is None  # a limit order is not bound by it


def test_market_notional_at_the_best_price_where_binance_applies_it() -> None:
    failure = check_market(info(), D("0.00007"), D("64000.00"))
    assert failure is not None and failure.filter == "NOTIONAL"
    assert failure.message == (
        "NOTIONAL: order_size times best price 64000 must be at least 5 (it is 4.48)"
    )
    assert check_market(info(), D("0.00007"), None) is None  # no price known: not checked
    # applyMaxToMarket is false for BTCUSDT: a market order may exceed maxNotional.
    assert check_market(info(), D(80), D(1000000)) is None
    capped = info(notional=(NotionalFilter("NOTIONAL", D(5), D(100), False, True, 5),))
    assert check_market(capped, D("0.00001"), D(64000)) is None  # minimum not applied
    failure = check_market(capped, D("0.002"), D(64000))
    assert failure is not None
    assert failure.message == (
        "NOTIONAL: order_size times best price 64000 must be at most 100 (it is 128)"
    )
    old = info(notional=(NotionalFilter("MIN_NOTIONAL", D(10), D(0), False, False, 5),))
    assert check_market(old, D("0.0001"), D(64000)) is None  # applyToMarket false


# -- exactness, generated -----------------------------------------------------------------------

steps = st.sampled_from(["1", "0.1", "0.01", "0.00001", "0.00000001", "0.25", "5"]).map(D)


@given(step=steps, multiple=st.integers(min_value=1, max_value=10**12))
def test_every_multiple_of_the_step_within_bounds_passes(step: Decimal, multiple: int) -> None:
    rule = LotSize("LOT_SIZE", step, step * 10**12, step)
    sized = info(lot_size=rule, market_lot_size=None, notional=())
    assert check_market(sized, step * multiple, None) is None
    assert check_limit(sized, D(1), step * multiple) is None


@given(
    step=steps,
    multiple=st.integers(min_value=0, max_value=10**12),
    millionths=st.integers(min_value=1, max_value=999_999),
)
def test_a_size_off_the_step_fails(step: Decimal, multiple: int, millionths: int) -> None:
    """A size past a multiple of the step by any fraction of a step fails LOT_SIZE."""
    size = step * multiple + step * millionths / 1_000_000  # exact: a terminating quotient
    sized = info(lot_size=LotSize("LOT_SIZE", D(0), D(0), step), notional=())
    failure = check_limit(sized, D(1), size)
    assert failure is not None and failure.filter == "LOT_SIZE"


@given(
    tick=steps,
    low=st.integers(min_value=1, max_value=1000),
    span=st.integers(min_value=0, max_value=1000),
    at=st.integers(min_value=-5, max_value=2005),
)
def test_price_bounds_are_inclusive(tick: Decimal, low: int, span: int, at: int) -> None:
    rule = PriceFilter(tick * low, tick * (low + span), tick)
    priced = info(price_filter=rule, notional=())
    failure = check_limit(priced, tick * at, D("0.001"))
    inside = low <= at <= low + span
    assert (failure is None) == inside
