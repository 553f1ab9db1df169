"""Recent top of book per symbol, so a page opened late still shows the last minutes.

`BookHistory` keeps, per symbol, the first quote of each second for the last `seconds`
seconds (a bounded ring: at most `seconds` points a symbol, at most `max_symbols` symbols,
the symbol quoted least recently dropped first). Sampling the first quote of a second keeps
the feed's hot path to one float comparison for every other quote of that second.

`GET /book/{symbol}/history` answers
`{"symbol", "seconds", "points": [{"ts", "bid", "ask"}]}`, oldest first, prices exact.
A symbol nobody has quoted (yet) answers an empty list: the page then waits for live quotes.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from app.clock import rfc3339
from app.core import rules
from app.core.decimals import fmt
from app.core.domain import BookUpdate
from app.http.errors import ApiError
from app.schemas import ErrorDetail

DEFAULT_SECONDS = 900  # 15 minutes of one point a second
DEFAULT_MAX_SYMBOLS = 256


@dataclass(frozen=True, slots=True)
class QuotePoint:
    received_at: float  # time.time() of the quote
    bid: Decimal | None
    ask: Decimal | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": rfc3339(int(self.received_at * 1_000_000)),
            "bid": None if self.bid is None else fmt(self.bid),
            "ask": None if self.ask is None else fmt(self.ask),
        }


class _SymbolRing:
    __slots__ = ("points", "second")

    def __init__(self, size: int) -> None:
        self.points: deque[QuotePoint] = deque(maxlen=size)
        self.second = -1  # the second of the newest point


class BookHistory:
    def __init__(
        self, seconds: int = DEFAULT_SECONDS, max_symbols: int = DEFAULT_MAX_SYMBOLS
    ) -> None:
        if seconds < 1 or max_symbols < 1:
            raise ValueError("seconds and max_symbols must be at least 1")
        self.seconds = seconds
        self.max_symbols = max_symbols
        self._rings: OrderedDict[str, _SymbolRing] = OrderedDict()

    def on_update(self, update: BookUpdate) -> None:
        """A quote from the feed (or the cross-process book channel)."""
        ring = self._rings.get(update.symbol)
        second = int(update.received_at)
        if ring is not None and second <= ring.second:
            return  # this second has its point already
        if ring is None:
            ring = self._rings[update.symbol] = _SymbolRing(self.seconds)
            if len(self._rings) > self.max_symbols:
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(update.symbol)
        ring.second = second
        bid = update.bids[0][0] if update.bids else None
        ask = update.asks[0][0] if update.asks else None
        ring.points.append(QuotePoint(update.received_at, bid, ask))

    def points(self, symbol: str, *, now: float) -> list[QuotePoint]:
        """The symbol's points of the last `seconds` seconds before `now`, oldest first."""
        ring = self._rings.get(symbol)
        if ring is None:
            return []
        since = now - self.seconds
        return [point for point in ring.points if point.received_at >= since]

    @property
    def symbols(self) -> int:
        return len(self._rings)


def path_symbol(request: web.Request) -> str:
    """The `{symbol}` of the path, upper case, or 422 naming it."""
    try:
        return rules.symbol(request.match_info["symbol"])
    except ValueError as exc:
        raise ApiError(
            422, str(exc), details=[ErrorDetail(field="symbol", message=str(exc))]
        ) from None


BOOK_HISTORY = web.AppKey("book_history", BookHistory)

routes = web.RouteTableDef()


@routes.get("/book/{symbol}/history")
async def book_history(request: web.Request) -> web.Response:
    symbol = path_symbol(request)
    history = request.app[BOOK_HISTORY]
    points = history.points(symbol, now=time.time())
    body = {
        "symbol": symbol,
        "seconds": history.seconds,
        "points": [point.to_json() for point in points],
    }
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
