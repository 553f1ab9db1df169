"""What the emulator answers to `GET /api/v3/exchangeInfo` (Binance's rest-api.md).

BTCUSDT carries the filters Binance publishes for it (2024-2025 captures of the live
answer; `MARKET_LOT_SIZE.maxQty` is recomputed by Binance every so often, this is one value
it had); ETHUSDT, BNBUSDT and LTCBTC carry values of the same kind as Binance's.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from app.core.symbols import symbol_assets

ExchangeInfoFault = Literal["error", "rate_limited", "reset", "stall"]

# Binance's rule for a symbol parameter, and its answers when it is broken or unknown.
_SYMBOL_PARAMETER = re.compile(r"^[A-Z0-9-_.]{1,20}$")
ILLEGAL_SYMBOL = {
    "code": -1100,
    "msg": "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
}
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}

_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def symbol_entry(
    symbol: str,
    base_asset: str,
    quote_asset: str,
    *,
    status: str = "TRADING",
    tick_size: str = "0.01000000",
    min_price: str | None = None,
    max_price: str = "1000000.00000000",
    step_size: str = "0.00001000",
    min_qty: str | None = None,
    max_qty: str = "9000.00000000",
    market_max_qty: str = "100.00000000",
    min_notional: str = "5.00000000",
    apply_min_to_market: bool = True,
    max_notional: str = "9000000.00000000",
    apply_max_to_market: bool = False,
    extra_filters: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A symbols[] entry shaped like Binance's: the filters it publishes for spot symbols,
    in its order (minima default to one tick and one step, as Binance sets them)."""
    return {
        "symbol": symbol,
        "status": status,
        "baseAsset": base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": min_price or tick_size,
                "maxPrice": max_price,
                "tickSize": tick_size,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": min_qty or step_size,
                "maxQty": max_qty,
                "stepSize": step_size,
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": market_max_qty,
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": min_notional,
                "applyMinToMarket": apply_min_to_market,
                "maxNotional": max_notional,
                "applyMaxToMarket": apply_max_to_market,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            *extra_filters,
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


_DEFAULTS = {
    "BTCUSDT": symbol_entry("BTCUSDT", "BTC", "USDT", market_max_qty="83.76572430"),
    "ETHUSDT": symbol_entry(
        "ETHUSDT", "ETH", "USDT", step_size="0.00010000", market_max_qty="1902.26518569"
    ),
    "BNBUSDT": symbol_entry(
        "BNBUSDT",
        "BNB",
        "USDT",
        step_size="0.00100000",
        max_qty="9000000.00000000",
        market_max_qty="2847.72310458",
    ),
    "LTCBTC": symbol_entry(
        "LTCBTC",
        "LTC",
        "BTC",
        tick_size="0.00000100",
        max_price="100000.00000000",
        step_size="0.00100000",
        max_qty="100000.00000000",
        market_max_qty="3207.49530208",
        min_notional="0.00010000",
        max_notional="9000000.00000000",
    ),
}


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a made-up symbol, guessed as the service guesses it when exchange
    info is out of reach: "AAAUSDT" -> ("AAA", "USDT")."""
    assets = symbol_assets(symbol)
    return assets.base, assets.quote


def permissive_entry(symbol: str) -> dict[str, Any]:
    """A TRADING entry that lets nearly any order through (tick and step 10^-8, no notional
    minimum): for a made-up symbol in a test or the demo, when `list_every_symbol` is on."""
    base, quote = split_symbol(symbol)
    return symbol_entry(
        symbol,
        base,
        quote,
        tick_size="0.00000001",
        max_price="100000000000.00000000",
        step_size="0.00000001",
        max_qty="100000000000.00000000",
        market_max_qty="100000000000.00000000",
        min_notional="0.00000000",
        apply_min_to_market=False,
        max_notional="0.00000000",
    )


def default_exchange_symbols() -> dict[str, dict[str, Any]]:
    """A fresh copy of the symbols the emulator lists from the start."""
    return copy.deepcopy(_DEFAULTS)


def exchange_info_response(
    symbols: Mapping[str, dict[str, Any]],
    query: Mapping[str, str],
    *,
    list_every_symbol: bool = False,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for `GET /api/v3/exchangeInfo` with `query`: `symbol=X`,
    `symbols=["X","Y"]` or nothing (every symbol). With `list_every_symbol`, a symbol not in
    `symbols` is answered with `permissive_entry` instead of -1121."""
    if "symbol" in query:
        names = [query["symbol"]]
    elif "symbols" in query:
        listed = _symbol_list(query["symbols"])
        if listed is None:
            return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}
        names = listed
    else:
        names = list(symbols)
    if any(_SYMBOL_PARAMETER.fullmatch(name) is None for name in names):
        return 400, ILLEGAL_SYMBOL
    if not list_every_symbol and any(name not in symbols for name in names):
        return 400, INVALID_SYMBOL
    return 200, {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": _RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbols.get(name) or permissive_entry(name) for name in names],
    }


def _symbol_list(text: str) -> list[str] | None:
    """`["BTCUSDT","BNBBTC"]` (Binance's form for `symbols`) as a list, or None."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    items = [item.strip() for item in text[1:-1].split(",")]
    if not items or not all(len(i) >= 2 and i[0] == i[-1] == '"' for i in items):
        return None
    return [item[1:-1] for item in items]
