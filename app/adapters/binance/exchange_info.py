"""Binance's exchange info for one symbol at a time: `GET {rest_url}/api/v3/exchangeInfo?symbol=X`.

What it answers is cached per symbol: a `TRADING` symbol for `ttl_s` (an hour), a symbol
Binance does not know (HTTP 400, code -1121 "Invalid symbol.") or one that is not trading
for `unknown_ttl_s` (a minute). Concurrent lookups of one symbol share one request.

When Binance cannot be read (unreachable, a timeout, 5xx, 429, an answer that does not
parse) the lookup is "unavailable", and that too is remembered for `retry_after_s`, so that
an outage costs one short timeout per symbol and not one per order; a symbol read before is
checked against what was read, however old. The checks (`check_limit`, `check_market`) pass
an order they cannot check and count it: `state()` is the part of /readyz that says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import aiohttp
import orjson
import structlog

from app.core.filters import (
    FilterFailure,
    MalformedExchangeInfo,
    SymbolInfo,
    check_limit,
    check_market,
    unknown_symbol,
)
from app.ports import ExchangeFilters

__all__ = ["ExchangeFilters", "ExchangeInfoClient", "FiltersOff", "SymbolLookup"]

log = structlog.get_logger(__name__)

INVALID_SYMBOL = -1121  # Binance's error code for a symbol it does not list
PATH = "/api/v3/exchangeInfo"

Outcome = Literal["ok", "unknown", "unavailable"]


@dataclass(frozen=True, slots=True)
class SymbolLookup:
    """ "ok" with the symbol's info (trading or not), "unknown" (Binance does not list it),
    or "unavailable" (Binance could not be read; `reason` says why)."""

    outcome: Outcome
    info: SymbolInfo | None = None
    reason: str = ""


class FiltersOff:
    """EXCHANGE_FILTERS=off: every order passes, nothing is read."""

    async def check_limit(self, symbol: str, price: Decimal, qty: Decimal) -> FilterFailure | None:
        return None

    async def check_market(
        self, symbol: str, qty: Decimal, best_price: Decimal | None
    ) -> FilterFailure | None:
        return None

    def state(self) -> dict[str, Any]:
        return {"exchange_info": "off", "unchecked_orders": 0}

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class _Cached:
    lookup: SymbolLookup
    expires_at: float


class ExchangeInfoClient:
    def __init__(
        self,
        rest_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 2.0,
        ttl_s: float = 3600.0,
        unknown_ttl_s: float = 60.0,
        retry_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.ttl_s = ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Task[SymbolLookup]] = {}
        self.available = True  # the last request reached Binance and was understood
        self.unchecked_orders = 0  # orders passed because exchange info could not be read
        self.requests = 0  # HTTP requests sent

    # -- the port -----------------------------------------------------------------------

    async def check_limit(self, symbol: str, price: Decimal, qty: Decimal) -> FilterFailure | None:
        lookup = await self.lookup(symbol)
        if lookup.info is None:
            return self._without_info(symbol, lookup)
        return check_limit(lookup.info, price, qty)

    async def check_market(
        self, symbol: str, qty: Decimal, best_price: Decimal | None
    ) -> FilterFailure | None:
        lookup = await self.lookup(symbol)
        if lookup.info is None:
            return self._without_info(symbol, lookup)
        return check_market(lookup.info, qty, best_price)

    def state(self) -> dict[str, Any]:
        return {
            "exchange_info": "ok" if self.available else "unavailable",
            "unchecked_orders": self.unchecked_orders,
        }

    async def close(self) -> None:
        pending = list(self._inflight.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _without_info(self, symbol: str, lookup: SymbolLookup) -> FilterFailure | None:
        if lookup.outcome == "unknown":
            return unknown_symbol(symbol)
        self.unchecked_orders += 1
        return None

    # -- lookups ------------------------------------------------------------------------

    async def lookup(self, symbol: str) -> SymbolLookup:
        """The symbol's exchange info, from the cache while it is fresh."""
        symbol = symbol.upper()
        cached = self._cache.get(symbol)
        if cached is not None and self._clock() < cached.expires_at:
            return cached.lookup
        task = self._inflight.get(symbol)
        if task is None:
            task = asyncio.create_task(self._refresh(symbol), name=f"exchange-info {symbol}")
            self._inflight[symbol] = task
            task.add_done_callback(lambda _: self._inflight.pop(symbol, None))
        # One caller giving up (a client that disconnects) must not cancel the others' request.
        return await asyncio.shield(task)

    def forget(self, symbol: str | None = None) -> None:
        """Drop what is cached for `symbol` (every symbol with None)."""
        if symbol is None:
            self._cache.clear()
        else:
            self._cache.pop(symbol.upper(), None)

    async def _refresh(self, symbol: str) -> SymbolLookup:
        lookup, retry_after = await self._fetch(symbol)
        now = self._clock()
        if lookup.outcome == "unavailable":
            self._became(available=False, reason=lookup.reason)
            previous = self._cache.get(symbol)
            if previous is not None and previous.lookup.outcome != "unavailable":
                lookup = previous.lookup  # what was read before beats no check at all
            self._cache[symbol] = _Cached(lookup, now + max(self.retry_after_s, retry_after))
            return lookup
        self._became(available=True)
        trading = lookup.info is not None and lookup.info.trading
        ttl = self.ttl_s if trading else self.unknown_ttl_s
        self._cache[symbol] = _Cached(lookup, now + ttl)
        return lookup

    async def _fetch(self, symbol: str) -> tuple[SymbolLookup, float]:
        """The lookup, and how long Binance asked us to wait before the next request."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.requests += 1
        try:
            async with self._session.get(
                self.rest_url + PATH, params={"symbol": symbol}, timeout=self._timeout
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = _seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return _unavailable(f"{type(exc).__name__}: {exc}".rstrip(": ")), 0.0
        try:
            return _interpret(symbol, status, body), retry_after
        except (orjson.JSONDecodeError, MalformedExchangeInfo) as exc:
            return _unavailable(f"HTTP {status}, an answer that does not parse: {exc}"), 0.0

    def _became(self, *, available: bool, reason: str = "") -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            log.info("exchange info readable again; orders are checked")
        else:
            log.warning(
                "exchange info unavailable; orders are accepted unchecked",
                url=self.rest_url + PATH,
                reason=reason,
            )


def _interpret(symbol: str, status: int, body: bytes) -> SymbolLookup:
    if status == 200:
        data = orjson.loads(body)
        entries = data.get("symbols") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise MalformedExchangeInfo("no symbols list")
        for entry in entries:
            if isinstance(entry, dict) and entry.get("symbol") == symbol:
                return SymbolLookup("ok", SymbolInfo.from_exchange_info(entry))
        return SymbolLookup("unknown")
    if status == 400:
        error = orjson.loads(body)
        if isinstance(error, dict) and error.get("code") == INVALID_SYMBOL:
            return SymbolLookup("unknown")
        return _unavailable(f"HTTP 400: {body[:200].decode(errors='replace')}")
    return _unavailable(f"HTTP {status}")


def _unavailable(reason: str) -> SymbolLookup:
    return SymbolLookup("unavailable", reason=reason)


def _seconds(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header else 0.0
    except ValueError:
        return 0.0
