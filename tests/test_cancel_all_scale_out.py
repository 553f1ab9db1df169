"""DELETE /orders on an `api` process beside an executor, on real PostgreSQL and Redis: the
cancels travel as commands to the executor that owns each symbol, the answer comes back
through the bus and the store, and another api process sees the orders cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.emulator.server import BinanceEmulator
from tests.helpers import stream
from tests.test_scale_out import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(
    tmp_path: Path, postgres_store_url: str, redis_db_url: str, emulator: BinanceEmulator
) -> AsyncIterator[Cluster]:
    running = Cluster(tmp_path, postgres_store_url, redis_db_url, emulator.base_url)
    yield running
    await running.stop()


async def test_cancel_all_on_an_api_process(cluster: Cluster, emulator: BinanceEmulator) -> None:
    await cluster.start(apis=2, executors=1, API_TOKENS="alice:tok-a,bob:tok-b")
    await cluster.wait_balanced(cluster.executors)
    alice = {"Authorization": "Bearer tok-a"}
    bob = {"Authorization": "Bearer tok-b"}
    front, back = cluster.apis

    async def place(headers: dict[str, str], symbol: str) -> str:
        body = {"symbol": symbol, "side": "sell", "order_size": "3", "price": "10"}
        status, order = await front.request("POST", "/order/limit", json=body, headers=headers)
        assert status == 202, order
        return str(order["order_id"])

    partly = await place(alice, "CAAUSDT")
    await emulator.wait_subscribed(stream("CAAUSDT"))
    emulator.book_ticker("CAAUSDT", "10", "1", "11", "1")  # 1 of its 3 fills
    async with asyncio.timeout(10):  # another process: nothing to await but its answer
        while True:
            _, order = await front.request("GET", f"/orders/{partly}", headers=alice)
            if order["filled_qty"] == "1":
                break
            await asyncio.sleep(0.02)
    others = [await place(alice, symbol) for symbol in ("CAAUSDT", "CABUSDT")]
    bobs = await place(bob, "CAAUSDT")

    status, body = await back.request("DELETE", "/orders?symbol=CAAUSDT", headers=alice)
    assert status == 200, body
    assert [o["order_id"] for o in body["cancelled"]] == [others[0], partly]
    assert body["cancelled"][1]["status"] == "cancelled"
    assert [f["qty"] for f in body["cancelled"][1]["fills"]] == ["1"]
    status, body = await front.request("DELETE", "/orders", headers=alice)
    assert status == 200 and [o["order_id"] for o in body["cancelled"]] == [others[1]]
    _, order = await front.request("GET", f"/orders/{bobs}", headers=bob)
    assert order["status"] == "open"
