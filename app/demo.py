"""Offline demo: an in-process Binance emulator replaying real BTCUSDT quotes (and
seeded random walks for other symbols), with the service pointed at it for market data
and exchange info alike: nothing reaches Binance."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, cast

import structlog

from app.application import create_app
from app.clock import now_us
from app.emulator.server import BinanceEmulator
from app.emulator.sources import Kind, random_walk, recorded_quotes
from app.logs import configure_logging
from app.serving import listen, listening_url, run_until_stopped
from app.settings import Settings

log = structlog.get_logger(__name__)

Source = AsyncIterator[tuple[float, str, dict[str, Any]]]


async def _as_async(source: Any) -> Source:
    if hasattr(source, "__aiter__"):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


async def replay(emulator: BinanceEmulator, source: Any) -> None:
    """Publish each (delay, stream, payload) of `source` after its delay."""
    async for delay, stream, payload in _as_async(source):
        if delay > 0:
            await asyncio.sleep(delay)
        emulator.publish(stream, payload)


DEMO_DATABASE = Path("demo.db")
"""The demo's orders are never the live service's: ./database.db would resume them against
the real Binance on the next `python -m app`."""


def demo_settings(make_settings: Callable[..., Settings], emulator: BinanceEmulator) -> Settings:
    """The settings, pointed at the emulator (its websocket and its exchangeInfo), with the
    demo's own database unless DATABASE_PATH is set (in the environment or .env)."""
    settings = make_settings(binance_ws_url=emulator.base_url, binance_rest_url=emulator.rest_url)
    if "database_path" not in settings.model_fields_set:
        settings = settings.model_copy(update={"database_path": DEMO_DATABASE})
    return settings


def list_demo_symbols(emulator: BinanceEmulator, walks: Iterable[str]) -> None:
    """BTCUSDT keeps Binance's real filters (its prices are real); a random walk's prices are
    made up, so its symbol, and any other made-up one, is listed with permissive filters."""
    emulator.list_every_symbol = True
    for symbol in walks:
        emulator.unlist_symbol(symbol.upper())


async def _demo(
    make_settings: Callable[..., Settings], speed: float, walks: Iterable[str], seed: int
) -> None:
    emulator = BinanceEmulator()
    base_url = await emulator.start()
    walks = list(walks)
    list_demo_symbols(emulator, walks)
    replays: list[asyncio.Task[None]] = []
    try:
        settings = demo_settings(make_settings, emulator)
        sockets = listen(settings.http_host, settings.http_port)
        configure_logging(settings.log_format, settings.log_level)
        kind = cast(Kind, settings.market_stream.value)
        # Update ids above any earlier run's: the service keeps the last one it applied per
        # symbol in the database, and a replay starting over at the recording's ids would
        # otherwise be skipped as stale (rule 1) after a restart of the demo.
        id_base = now_us()
        replays.append(
            asyncio.create_task(
                replay(emulator, recorded_quotes(speed=speed, kind=kind, id_base=id_base))
            )
        )
        replays += [
            asyncio.create_task(
                replay(
                    emulator,
                    random_walk(symbol.upper(), seed=seed + n, kind=kind, id_base=id_base),
                )
            )
            for n, symbol in enumerate(walks)
        ]
        url = listening_url(settings.http_host, sockets)
        symbols = ", ".join(["BTCUSDT (recorded 2024-08-08)", *(s.upper() for s in walks)])

        def banner() -> None:
            print(
                f"Offline demo on {url}: emulated Binance at {base_url} replaying {symbols}; "
                f"orders in {settings.database_path}.\n"
                f"Try: curl -s {url}/order/limit --data "
                '\'{"symbol": "BTCUSDT", "side": "buy", "order_size": "0.5", '
                '"price": "61850"}\'\nCtrl-C stops it.',
                flush=True,
            )

        await run_until_stopped(create_app(settings), sockets, on_listening=banner)
    finally:
        for task in replays:
            task.cancel()
        for task in replays:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await emulator.stop()


def run_demo(
    make_settings: Callable[..., Settings], *, speed: float, walk_symbols: list[str], seed: int
) -> None:
    asyncio.run(_demo(make_settings, speed, walk_symbols, seed))
