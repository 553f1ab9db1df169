"""GET /symbols/{symbol}: what the page needs to show a symbol's prices and sizes.

`{"symbol", "status", "base_asset", "quote_asset", "tick_size", "step_size", "min_qty",
"min_notional", "source"}`: the tick (`PRICE_FILTER.tickSize`) and step (`LOT_SIZE.stepSize`)
from Binance's exchange info, the page rounds what it *displays* to them (the API stays
exact). `source` is `exchange_info` when they were read, `unavailable` when exchange info
cannot be read (or this process reads none: the fields are then null, the assets guessed
from the name) and `off` with EXCHANGE_FILTERS=off. A symbol Binance does not list is 404
`unknown_symbol`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, Protocol

import orjson
from aiohttp import web

from app.adapters.binance.exchange_info import ExchangeInfoClient, SymbolLookup
from app.core.decimals import ZERO, fmt
from app.core.filters import SymbolInfo
from app.core.symbols import symbol_assets
from app.http.book_history import path_symbol
from app.http.errors import ApiError
from app.keys import FILTERS, SETTINGS

Source = Literal["exchange_info", "unavailable", "off"]


class SymbolLookups(Protocol):
    """Exchange info by symbol (`ExchangeInfoClient` is one)."""

    async def lookup(self, symbol: str) -> SymbolLookup: ...


SYMBOL_LOOKUPS = web.AppKey("symbol_lookups", SymbolLookups)

routes = web.RouteTableDef()


def _size(value: Decimal | None) -> str | None:
    """A filter bound as text; Binance's 0 means "no rule", shown as null."""
    return None if value is None or value == ZERO else fmt(value)


def symbol_json(symbol: str, info: SymbolInfo | None, source: Source) -> dict[str, Any]:
    if info is None:
        assets = symbol_assets(symbol)
        return {
            "symbol": symbol, "status": None,
            "base_asset": assets.base, "quote_asset": assets.quote,
            "tick_size": None, "step_size": None, "min_qty": None, "min_notional": None,
            "source": source,
        }  # fmt: skip
    price, lot = info.price_filter, info.lot_size
    min_notional = max((n.min_notional for n in info.notional), default=None)
    return {
        "symbol": info.symbol,
        "status": info.status,
        "base_asset": info.base_asset,
        "quote_asset": info.quote_asset,
        "tick_size": _size(price.tick_size if price else None),
        "step_size": _size(lot.step_size if lot else None),
        "min_qty": _size(lot.min_qty if lot else None),
        "min_notional": _size(min_notional),
        "source": source,
    }


def _lookups(app: web.Application) -> SymbolLookups | None:
    """Who reads exchange info: an explicit SYMBOL_LOOKUPS, else the intake's filters when
    they read it (the same cache: a symbol is asked of Binance once for both)."""
    explicit = app.get(SYMBOL_LOOKUPS)
    if explicit is not None:
        return explicit
    filters = app.get(FILTERS)
    return filters if isinstance(filters, ExchangeInfoClient) else None


@routes.get("/symbols/{symbol}")
async def get_symbol(request: web.Request) -> web.Response:
    symbol = path_symbol(request)
    lookups = _lookups(request.app)
    if lookups is None:
        off = request.app[SETTINGS].exchange_filters == "off"
        body = symbol_json(symbol, None, "off" if off else "unavailable")
    else:
        lookup = await lookups.lookup(symbol)
        if lookup.outcome == "unknown":
            raise ApiError(404, f"{symbol} is not listed by the exchange", code="unknown_symbol")
        source: Source = "exchange_info" if lookup.info is not None else "unavailable"
        body = symbol_json(symbol, lookup.info, source)
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "max-age=60"},
    )
