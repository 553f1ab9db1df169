"""The offline demo, run as a newcomer would: `python -m app demo`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.service_process import free_port

pytestmark = pytest.mark.slow


async def test_demo_fills_an_order_on_recorded_prices(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "explicit.db"
    env = {**os.environ, "HTTP_PORT": str(port), "DATABASE_PATH": str(database),
           "LOG_FORMAT": "json", "LOG_LEVEL": "warning"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "demo", "--speed", "5", "--random-walk", "ethusdt",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert url in banner and "BTCUSDT" in banner
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(20):
                while True:
                    async with session.get(f"{url}/readyz") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.05)
            orders = {}
            for symbol, price in (("BTCUSDT", "70000"), ("ETHUSDT", "1000")):
                async with session.post(
                    f"{url}/order/limit",
                    data=f'{{"symbol": "{symbol}", "side": "buy", "order_size": "0.001", '
                    f'"price": "{price}"}}',
                ) as response:
                    assert response.status == 202
                    orders[symbol] = (await response.json())["order_id"]
            async with asyncio.timeout(20):
                for order_id in orders.values():
                    while True:
                        async with session.get(f"{url}/orders/{order_id}") as response:
                            order = await response.json()
                        if order["status"] == "filled":
                            break
                        await asyncio.sleep(0.05)
            async with session.get(f"{url}/orders/{orders['BTCUSDT']}") as response:
                btc = await response.json()
            assert 60000 < float(btc["avg_price"]) < 63000  # a real recorded ask
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert database.exists()  # an explicit DATABASE_PATH is used as given


async def test_the_demo_has_its_own_database_by_default(tmp_path: Path) -> None:
    """Demo orders must not resume against live Binance: not ./database.db, but ./demo.db."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_PATH"}
    env.update(HTTP_PORT=str(port), LOG_FORMAT="json", LOG_LEVEL="warning")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "demo", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert "demo.db" in banner
        async with aiohttp.ClientSession() as session, asyncio.timeout(20):
            while True:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert (tmp_path / "demo.db").exists()
    assert not (tmp_path / "database.db").exists()
