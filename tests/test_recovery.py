"""Crashes and restarts lose no accepted order and no fill, and duplicate nothing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from app.emulator.server import BinanceEmulator
from tests.helpers import stream
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.slow


def _check_database(path: Path) -> dict[str, tuple[str, Decimal, int]]:
    """Every order's fills sum to filled_qty <= order_size, seq is 1..n, no duplicates."""
    db = sqlite3.connect(path)
    orders = {}
    for order_id, size, filled, status, count in db.execute(
        "SELECT order_id, order_size, filled_qty, status, fill_count FROM orders"
    ):
        fills = db.execute(
            "SELECT seq, qty FROM fills WHERE order_id = ? ORDER BY seq", (order_id,)
        ).fetchall()
        assert [seq for seq, _ in fills] == list(range(1, len(fills) + 1))
        assert len(fills) == count
        total = sum((Decimal(qty) for _, qty in fills), Decimal(0))
        assert total == Decimal(filled) <= Decimal(size), order_id
        assert (status == "filled") == (Decimal(filled) == Decimal(size))
        orders[order_id] = (status, Decimal(filled), count)
    db.close()
    return orders


def _check_nothing_open_past_expiry(path: Path) -> None:
    now_us = time.time_ns() // 1000
    late = (
        sqlite3.connect(path)
        .execute(
            "SELECT COUNT(*) FROM orders WHERE status IN ('open', 'partially_filled') "
            "AND expires_at_us <= ?",
            (now_us,),
        )
        .fetchone()[0]
    )
    assert late == 0, f"{late} orders are open past expires_at after recovery"


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> str | None:
    try:
        async with session.post(f"{url}/order/limit", json=body) as response:
            if response.status == 202:
                return str((await response.json())["order_id"])
    except aiohttp.ClientError:
        pass
    return None


async def test_kill_9_during_a_quote_blast_loses_and_duplicates_nothing(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    database = tmp_path / "orders.db"
    rng = random.Random(1)
    accepted: set[str] = set()
    seen_fills: dict[str, int] = {}
    for round_number in range(5):
        # Short timeouts: some orders expire while the service is down, between rounds.
        service = ServiceProcess(database, emulator.base_url, ORDER_TIMEOUT_SECONDS="1.5")
        await service.start()
        if round_number:
            stored = _check_database(database)
            _check_nothing_open_past_expiry(database)
            assert accepted <= set(stored), "an accepted order was lost"
            for order_id, count in seen_fills.items():
                assert stored[order_id][2] >= count, "a fill seen before the crash was lost"
        async with aiohttp.ClientSession() as session:
            bodies = [
                {"symbol": "BTCUSDT", "side": rng.choice(["buy", "sell"]),
                 "order_size": str(rng.randint(1, 40)), "price": str(rng.randint(95, 105))}
                for _ in range(40)
            ]  # fmt: skip
            results = await asyncio.gather(*(_post(session, service.url, b) for b in bodies))
            accepted.update(r for r in results if r)
            await emulator.wait_subscribed(stream("BTCUSDT"))

            async def blast() -> None:
                for _ in range(3000):
                    mid = Decimal(rng.randint(9500, 10500)) / 100
                    emulator.book_ticker(
                        "BTCUSDT", str(mid - 1), str(rng.randint(1, 5)), str(mid + 1),
                        str(rng.randint(1, 5)),
                    )  # fmt: skip
                    await asyncio.sleep(0)

            blaster = asyncio.create_task(blast())
            await asyncio.sleep(0.3 + rng.random() * 0.3)
            _, listing = await service.request("GET", "/orders?limit=500")
            for order in listing["orders"]:
                _, full = await service.request("GET", f"/orders/{order['order_id']}")
                seen_fills[order["order_id"]] = len(full["fills"])
            await service.kill()
            blaster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await blaster
    stored = _check_database(database)
    assert accepted <= set(stored)
    assert any(count for _, _, count in stored.values()), "the blast filled nothing"


async def test_sigterm_exits_0_and_open_orders_resume(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    database = tmp_path / "orders.db"
    service = ServiceProcess(database, emulator.base_url)
    await service.start()
    status, order = await service.request(
        "POST", "/order/limit", json={"symbol": "LTCBTC", "order_size": "5", "price": "1"}
    )
    assert status == 202
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "1", "2", "2", "1")
    await service.wait_for_order(order["order_id"], lambda o: o["filled_qty"] == "2")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await service.terminate() == 0
    assert loop.time() - started < 10

    restarted = ServiceProcess(database, emulator.base_url)
    await restarted.start()
    _, resumed = await restarted.request("GET", f"/orders/{order['order_id']}")
    assert resumed["status"] == "partially_filled" and resumed["filled_qty"] == "2"
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "1.5", "10", "2", "1")
    await restarted.wait_for_order(order["order_id"], lambda o: o["status"] == "filled")
    _, final = await restarted.request("GET", f"/orders/{order['order_id']}")
    assert [(f["seq"], f["price"], f["qty"]) for f in final["fills"]] == [
        (1, "1", "2"), (2, "1.5", "3"),
    ]  # fmt: skip
    await restarted.terminate()


async def test_orders_past_expiry_while_down_are_expired_on_start(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    database = tmp_path / "orders.db"
    service = ServiceProcess(database, emulator.base_url)
    await service.start()
    _, short = await service.request(
        "POST", "/order/limit",
        json={"symbol": "LTCBTC", "order_size": "5", "price": "1", "timeout_s": 1},
    )  # fmt: skip
    _, long = await service.request(
        "POST", "/order/limit",
        json={"symbol": "LTCBTC", "order_size": "5", "price": "1", "timeout_s": 600},
    )  # fmt: skip
    await service.kill()
    await asyncio.sleep(1.1)  # let the short order's expires_at pass while nothing runs
    restarted = ServiceProcess(database, emulator.base_url)
    await restarted.start()
    _, expired = await restarted.request("GET", f"/orders/{short['order_id']}")
    _, still_open = await restarted.request("GET", f"/orders/{long['order_id']}")
    assert expired["status"] == "expired" and expired["reason"]
    assert still_open["status"] == "open"
    await restarted.terminate()
