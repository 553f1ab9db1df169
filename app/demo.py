"""Offline demo: an in-process Binance emulator replaying real BTCUSDT quotes (and
seeded random walks for other symbols), with the service pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import structlog
from aiohttp import web

from app.application import create_app
from app.emulator.server import BinanceEmulator
from app.emulator.sources import random_walk, recorded_quotes
from app.logs import configure_logging
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


async def _demo(
    make_settings: Callable[..., Settings], speed: float, walks: Iterable[str], seed: int
) -> None:
    emulator = BinanceEmulator()
    base_url = await emulator.start()
    settings = make_settings(binance_ws_url=base_url)
    configure_logging(settings.log_format, settings.log_level)
    kind = settings.market_stream.value
    replays = [asyncio.create_task(replay(emulator, recorded_quotes(speed=speed, kind=kind)))]
    replays += [
        asyncio.create_task(replay(emulator, random_walk(symbol.upper(), seed=seed + n, kind=kind)))
        for n, symbol in enumerate(walks)
    ]
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    url = f"http://{settings.http_host}:{settings.http_port}"
    symbols = ", ".join(["BTCUSDT (recorded 2024-08-08)", *(s.upper() for s in walks)])
    print(
        f"Offline demo on {url}: emulated Binance at {base_url} replaying {symbols}.\n"
        f"Try: curl -s {url}/order/limit --data "
        '\'{"symbol": "BTCUSDT", "side": "buy", "order_size": "0.5", '
        '"price": "61850"}\'\nCtrl-C stops it.',
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
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
