"""`python -m app book SYMBOL`: a symbol's quote for a person, redrawn at most N times/s.

The /ws book channel pushes every quote (it is meant for programs); this view keeps only
the newest and redraws it at most `rate` times per second, so a burst of quotes costs a
couple of redraws and the last quote of the burst is always the one left on screen. On a
terminal it redraws in place (a line, or a small block when the message carries depth
levels under `bids`/`asks`) and refreshes the quote's age once a second while the symbol
is quiet; into a pipe or file it writes one line per redraw. Ctrl-C stops it with exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TextIO

import aiohttp

from app.terminal.api import Api, ApiError
from app.terminal.orders import timestamp
from app.terminal.precision import Precision

DEFAULT_RATE = 4.0  # redraws per second
IDLE_REFRESH_S = 1.0  # on a terminal: redraw the age this often while no quote comes
DEPTH_SHOWN = 5  # levels per side in the block view


def age_text(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m"


def _levels(message: dict[str, Any], key: str) -> list[Sequence[str]]:
    levels = message.get(key)
    if not isinstance(levels, list):
        return []
    return [level for level in levels if isinstance(level, list | tuple) and len(level) >= 2]


def _prices(message: dict[str, Any]) -> list[str | None]:
    """Every price a drawing shows: without the tick, they all get alike decimals."""
    levels = _levels(message, "bids")[:DEPTH_SHOWN] + _levels(message, "asks")[:DEPTH_SHOWN]
    return [message.get("bid"), message.get("ask"), *(str(level[0]) for level in levels)]


class BookView:
    """Renders book messages; `quotes` counts the quotes received, `draws` the redraws."""

    def __init__(
        self,
        symbol: str,
        out: TextIO,
        precision: Precision,
        *,
        in_place: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.symbol = symbol
        self.out = out
        self.precision = precision
        self.in_place = in_place
        self.clock = clock
        self.quotes = 0
        self.draws = 0
        self._lines_on_screen = 0

    def received(self, message: dict[str, Any]) -> None:
        """A quote arrived (drawn later, unless a newer one replaces it first)."""
        self.quotes += 1

    def _side(self, name: str, message: dict[str, Any]) -> str:
        price, qty = message.get(name), message.get(f"{name}_qty")
        if price is None:
            return f"{name} -"
        shown = self.precision.price(price, _prices(message))
        return f"{name} {shown} x {self.precision.qty(qty, [qty])}"

    def summary(self, message: dict[str, Any]) -> str:
        p = self.precision
        bid, ask = message.get("bid"), message.get("ask")
        parts = [self.symbol, self._side("bid", message), self._side("ask", message)]
        if bid is not None and ask is not None:
            spread = Decimal(ask) - Decimal(bid)
            middle = (Decimal(ask) + Decimal(bid)) / 2
            bps = f" ({spread / middle * 10_000:.2f} bps)" if middle else ""
            parts.append(f"spread {p.price(spread, _prices(message))}{bps}")
        if message.get("ts"):
            parts.append(f"age {age_text(self.clock() - timestamp(message['ts']))}")
        return "  ".join(parts)

    def render(self, message: dict[str, Any]) -> list[str]:
        """One line; with depth levels in the message, the line then asks over bids."""
        lines = [self.summary(message)]
        asks = _levels(message, "asks")[:DEPTH_SHOWN]
        bids = _levels(message, "bids")[:DEPTH_SHOWN]
        prices, p = _prices(message), self.precision
        for name, levels in (("ask", asks[::-1]), ("bid", bids)):
            lines += [
                f"  {name} {p.price(q[0], prices):>16}  {p.qty(q[1], [q[1]])}" for q in levels
            ]
        return lines

    def draw(self, message: dict[str, Any]) -> None:
        lines = self.render(message)
        if self.in_place:
            # Back to the first line of the previous drawing, then overwrite and clear.
            up = f"\x1b[{self._lines_on_screen - 1}F" if self._lines_on_screen > 1 else ""
            # Each line cleared before it is written; then whatever a longer block left below.
            text = "\r" + up + "\n".join(f"\x1b[2K{line}" for line in lines) + "\x1b[J"
            self.out.write(text)
            self._lines_on_screen = len(lines)
        else:
            self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.draws += 1

    def finish(self) -> None:
        if self.in_place and self._lines_on_screen:
            self.out.write("\n")
            self.out.flush()


class _Latest:
    """The newest book message, and an event set when one arrives that was not drawn."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.fresh = asyncio.Event()

    def put(self, message: dict[str, Any]) -> None:
        self.message = message
        self.fresh.set()


async def _receive(ws: aiohttp.ClientWebSocketResponse, view: BookView, latest: _Latest) -> None:
    async for frame in ws:
        if frame.type is not aiohttp.WSMsgType.TEXT:
            break
        message = json.loads(frame.data)
        if message.get("type") == "error":
            raise ApiError(f"error: {message.get('message')}")
        if message.get("type") == "book" and message.get("symbol") == view.symbol:
            view.received(message)
            latest.put(message)
    raise ApiError("error: the service closed the connection")


async def _redraw(view: BookView, latest: _Latest, rate: float) -> None:
    interval = 1.0 / rate
    while True:
        if view.in_place and latest.message is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_REFRESH_S):
                    await latest.fresh.wait()
        else:
            await latest.fresh.wait()
        latest.fresh.clear()
        assert latest.message is not None
        view.draw(latest.message)
        await asyncio.sleep(interval)  # the throttle: nothing is drawn before it ends


async def follow_book(
    api: Api,
    symbol: str,
    view: BookView,
    *,
    rate: float = DEFAULT_RATE,
    stop: asyncio.Event,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Draw `symbol`'s quotes until `stop` is set (0) or the service refuses or leaves."""
    latest = _Latest()
    try:
        async with api.session.ws_connect(
            api.ws_url, params={"book": symbol}, headers=api.headers, heartbeat=30
        ) as ws:
            first = await ws.receive()
            if first.type is not aiohttp.WSMsgType.TEXT:
                raise ApiError("error: the service closed the connection")
            acknowledgement = json.loads(first.data)
            if acknowledgement.get("type") == "error":
                raise ApiError(f"error: {acknowledgement.get('message')}")
            if announce is not None:
                announce(f"following {symbol}, at most {rate:g} redraws/s; Ctrl-C stops")
            tasks = [
                asyncio.create_task(_receive(ws, view, latest)),
                asyncio.create_task(_redraw(view, latest, rate)),
                asyncio.create_task(stop.wait()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                task.result()  # an ApiError from the receiver
            return 0
    except aiohttp.WSServerHandshakeError as exc:
        raise ApiError(
            f"error {exc.status}: the service refused the websocket", exc.status
        ) from None
    except aiohttp.ClientError as exc:
        raise ApiError(f"error: cannot reach {api.base_url}: {exc}") from None
    finally:
        view.finish()
