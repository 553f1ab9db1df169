"""Fixtures: a Binance-protocol emulator and the real app, both on free local ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.application import create_app
from app.core.events import OrderEvent
from app.emulator.exchange_info import split_symbol, symbol_entry
from app.emulator.server import BinanceEmulator
from app.keys import BUS
from app.logs import configure_logging
from app.settings import Settings

configure_logging("console", "warning")

# Real PostgreSQL and Redis servers, started by the tests that need them (session-scoped).
pytest_plugins = ["tests.engine_postgres", "tests.engine_redis"]


@pytest.fixture
async def emulator() -> AsyncIterator[BinanceEmulator]:
    emu = BinanceEmulator()
    await emu.start()
    yield emu
    await emu.stop()


def unrestricted_entry(symbol: str) -> dict[str, Any]:
    """A TRADING symbols[] entry with no filter at all: any price and size passes."""
    base, quote = split_symbol(symbol)
    entry = symbol_entry(symbol, base, quote)
    entry["filters"] = []
    return entry


class EverySymbolListed(dict[str, dict[str, Any]]):
    """The emulator's exchange_symbols with every symbol listed: a registered entry as
    given, any other with no filter at all (`unrestricted_entry`)."""

    def __contains__(self, symbol: object) -> bool:
        return True

    def get(self, symbol: str, default: Any = None) -> dict[str, Any]:  # type: ignore[override]
        entry = super().get(symbol)
        return entry if entry is not None else unrestricted_entry(symbol)


@pytest.fixture
def exchange(emulator: BinanceEmulator) -> BinanceEmulator:
    """The emulator's exchange info as the service's tests want it: every symbol listed,
    made-up ones too, with no filter, so that what a test orders (a tiny LTCBTC order, a
    price with 18 decimals) is not refused by Binance's rules. Tests of those rules list
    real entries again (tests/test_exchange_filters.py)."""
    emulator.exchange_symbols = EverySymbolListed()
    return emulator


@pytest.fixture
def make_settings(tmp_path: Path, exchange: BinanceEmulator) -> Callable[..., Settings]:
    """Settings for an app pointed at the emulator, for market data and exchange info:
    nothing a test starts reaches Binance."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_path": tmp_path / "orders.db",
            "binance_ws_url": exchange.base_url,
            "binance_rest_url": exchange.rest_url,
            "log_format": "console",
            "log_level": "warning",
            "unsubscribe_delay_s": 1.0,
            "feed_stall_timeout_s": 2.0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


AppClient = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def start_app(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    make_settings: Callable[..., Settings],
) -> Callable[..., Awaitable[TestClient]]:  # type: ignore[type-arg]
    async def start(**overrides: Any) -> TestClient:  # type: ignore[type-arg]
        app = create_app(make_settings(**overrides))
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def client(start_app: Callable[..., Awaitable[TestClient]]) -> TestClient:  # type: ignore[type-arg]
    return await start_app()


class EventLog:
    """Every order event the bus publishes, awaitable by order and event name."""

    def __init__(self, app: web.Application) -> None:
        self.events: list[OrderEvent] = []
        self._changed = asyncio.Condition()
        self._subscription = app[BUS].subscribe()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self._subscription:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def of(self, order_id: str) -> list[OrderEvent]:
        return [e for e in self.events if e.order_id == order_id]

    async def wait_for(
        self, order_id: str, event: str, *, count: int = 1, timeout: float = 5.0
    ) -> list[OrderEvent]:
        def matching() -> list[OrderEvent]:
            return [e for e in self.of(order_id) if e.kind == event]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def close(self) -> None:
        self._subscription.close()
        await self._task


@pytest.fixture
async def events(client: TestClient) -> AsyncIterator[EventLog]:  # type: ignore[type-arg]
    log = EventLog(client.app)
    yield log
    await log.close()
