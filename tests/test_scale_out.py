"""Two API and two executor processes on real PostgreSQL and Redis (CONTRACT.md, "Running as
several processes"): every guarantee across processes, a kill -9 and a SIGTERM included."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest

from app.core.partitions import partition_of
from app.emulator.server import BinanceEmulator
from tests.helpers import stream
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.slow

PARTITIONS = 16
LEASE_TTL_S = "4"  # short, so a kill -9 takeover is quick to test; the default is 10 s


class Cluster:
    def __init__(self, tmp_path: Path, store_url: str, bus_url: str, upstream: str) -> None:
        self._tmp = tmp_path
        self._env = {
            "STORE_URL": store_url, "BUS_URL": bus_url, "LEASE_TTL_S": LEASE_TTL_S,
            "UNSUBSCRIBE_DELAY_S": "0.2", "RATE_LIMIT_PER_S": "0", "LOG_LEVEL": "info",
        }  # fmt: skip
        self._upstream = upstream
        self.apis: list[ServiceProcess] = []
        self.executors: list[ServiceProcess] = []

    def _process(self, role: str, n: int, **env: str) -> ServiceProcess:
        return ServiceProcess(
            self._tmp / f"unused-{role}-{n}.db", self._upstream,
            log_path=self._tmp / f"{role}-{n}.log", ROLE=role, **{**self._env, **env},
        )  # fmt: skip

    async def start(self, apis: int = 2, executors: int = 2, **env: str) -> None:
        for n in range(executors):
            process = self._process("executor", n, **env)
            await process.start()
            self.executors.append(process)
        for n in range(apis):
            process = self._process("api", n, **env)
            await process.start()
            self.apis.append(process)

    async def partitions(self, executor: ServiceProcess) -> list[int]:
        try:
            _, body = await executor.request("GET", "/readyz")
        except aiohttp.ClientError:
            return []
        return list(body["service"]["partitions"] or [])

    async def wait_balanced(self, live: list[ServiceProcess], timeout: float = 15.0) -> float:
        """Until the live executors hold every partition between them; how long it took."""
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            while True:
                held = [await self.partitions(e) for e in live]
                every = sorted(p for ps in held for p in ps) == list(range(PARTITIONS))
                if every and (len(live) == 1 or all(held)):
                    return time.monotonic() - started
                await asyncio.sleep(0.1)  # another process: nothing to await but its answer

    async def stop(self) -> None:
        for process in [*self.apis, *self.executors]:
            if process.process is not None and process.process.returncode is None:
                with contextlib.suppress(Exception):
                    await process.terminate()


@pytest.fixture
async def cluster(
    tmp_path: Path,
    postgres_store_url: str,
    redis_db_url: str,
    emulator: BinanceEmulator,
) -> AsyncIterator[Cluster]:
    running = Cluster(tmp_path, postgres_store_url, redis_db_url, emulator.base_url)
    yield running
    await running.stop()


async def _post(api: ServiceProcess, **fields: Any) -> dict[str, Any]:
    status, body = await api.request("POST", "/order/limit", json=fields)
    assert status == 202, body
    return dict(body)


async def _check_store(store_url: str) -> dict[str, tuple[str, Decimal, int]]:
    """Every order's fills are 1..n, sum to filled_qty <= order_size, none twice."""
    db = await asyncpg.connect(store_url)
    try:
        orders = {}
        for row in await db.fetch(
            "SELECT order_id, order_size, filled_qty, status, fill_count FROM orders"
        ):
            fills = await db.fetch(
                "SELECT seq, qty FROM fills WHERE order_id = $1 ORDER BY seq", row["order_id"]
            )
            assert [f["seq"] for f in fills] == list(range(1, len(fills) + 1))
            assert len(fills) == row["fill_count"]
            total = sum((Decimal(f["qty"]) for f in fills), Decimal(0))
            assert total == Decimal(row["filled_qty"]) <= Decimal(row["order_size"])
            orders[row["order_id"]] = (row["status"], Decimal(row["filled_qty"]), len(fills))
        return orders
    finally:
        await db.close()


def _symbols_on_both(count: int) -> list[str]:
    """Symbols spread over many partitions (so over both executors)."""
    return [f"S{n}USDT" for n in range(count)]


async def test_orders_on_either_api_fill_once_on_the_executor_that_owns_the_symbol(
    cluster: Cluster,
    emulator: BinanceEmulator,
    postgres_store_url: str,
) -> None:
    await cluster.start()
    await cluster.wait_balanced(cluster.executors)
    symbols = _symbols_on_both(8)
    assert len({partition_of(s, PARTITIONS) for s in symbols}) > 2
    orders = []
    for n, symbol in enumerate(symbols):
        api = cluster.apis[n % 2]
        orders.append(await _post(api, symbol=symbol, side="sell", order_size="3", price="10"))
    for symbol in symbols:
        await emulator.wait_subscribed(stream(symbol))
        emulator.book_ticker(symbol, "10", "2", "11", "1")  # 2 of 3 at 10
        emulator.book_ticker(symbol, "10", "2", "11", "1")  # the same 2 again: nothing new
        emulator.book_ticker(symbol, "10", "3", "11", "1")  # it grew by 1: the last 1
    for n, order in enumerate(orders):
        other = cluster.apis[(n + 1) % 2]  # read on the api that did not take it
        final = await other.wait_for_order(
            order["order_id"], lambda o: o["status"] == "filled", timeout=10
        )
        assert [(f["seq"], f["qty"]) for f in final["fills"]] == [(1, "2"), (2, "1")]
    stored = await _check_store(postgres_store_url)
    assert all(status == "filled" for status, _, _ in stored.values())
    # Only the owner subscribed each symbol upstream: one connection per stream.
    for symbol in symbols:
        owners = [c for c, streams in emulator.subscriptions.items() if stream(symbol) in streams]
        assert len(owners) <= 1


async def test_a_websocket_on_one_api_gets_orders_placed_on_the_other_once_in_order(
    cluster: Cluster, emulator: BinanceEmulator
) -> None:
    await cluster.start()
    await cluster.wait_balanced(cluster.executors)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{cluster.apis[0].url}/ws?channel=orders") as ws,
    ):
        assert (await ws.receive_json())["type"] == "subscribed"
        order = await _post(
            cluster.apis[1], symbol="WSUSDT", side="sell", order_size="3", price="10"
        )
        await emulator.wait_subscribed(stream("WSUSDT"))
        for qty in ("1", "2", "3"):  # each grows the level by 1: three fills
            emulator.book_ticker("WSUSDT", "10", qty, "11", "1")
        seen: list[tuple[str, int | None]] = []
        async with asyncio.timeout(10):
            while not seen or seen[-1][0] != "filled":
                message = await ws.receive_json()
                if (
                    message.get("type") == "order"
                    and message["order"]["order_id"] == order["order_id"]
                ):
                    seen.append((message["event"], message.get("fill", {}).get("seq")))
    assert seen == [("accepted", None), ("fill", 1), ("fill", 2), ("fill", 3), ("filled", None)]


async def test_cancel_on_any_api_and_the_limits_hold_across_apis(
    cluster: Cluster, emulator: BinanceEmulator
) -> None:
    await cluster.start(RATE_LIMIT_PER_S="5", MAX_OPEN_ORDERS="2")
    await cluster.wait_balanced(cluster.executors)
    first = await _post(cluster.apis[0], symbol="CXUSDT", order_size="1", price="10")
    await _post(cluster.apis[1], symbol="CXUSDT", order_size="1", price="10")
    status, body = await cluster.apis[1].request(
        "POST", "/order/limit", json={"symbol": "CXUSDT", "order_size": "1", "price": "10"}
    )
    assert status == 429 and body["error"]["code"] == "too_many_open_orders"
    status, cancelled = await cluster.apis[1].request("DELETE", f"/orders/{first['order_id']}")
    assert status == 200 and cancelled["status"] == "cancelled"
    status, _ = await cluster.apis[0].request("DELETE", f"/orders/{first['order_id']}")
    assert status == 409
    # Five order requests per second per owner, whichever api gets them.
    await asyncio.sleep(1.1)  # the window of the requests above, a clock and not an event
    statuses = []
    for n in range(8):
        status, _ = await cluster.apis[n % 2].request("DELETE", "/orders/nope")
        statuses.append(status)
    assert statuses.count(429) >= 3 and statuses.count(404) >= 1, statuses


async def test_kill_9_of_an_executor_mid_blast_loses_and_duplicates_no_fill(
    cluster: Cluster,
    emulator: BinanceEmulator,
    postgres_store_url: str,
) -> None:
    await cluster.start(ORDER_TIMEOUT_SECONDS="60")
    await cluster.wait_balanced(cluster.executors)
    symbols = _symbols_on_both(6)
    rng = random.Random(3)
    orders = []
    for n in range(30):
        symbol = symbols[n % len(symbols)]
        orders.append(
            await _post(
                cluster.apis[n % 2], symbol=symbol, side="sell",
                order_size=str(rng.randint(5, 20)), price="10",
            )
        )  # fmt: skip
    for symbol in symbols:
        await emulator.wait_subscribed(stream(symbol))
    level = {symbol: 0 for symbol in symbols}

    async def blast(rounds: int) -> None:
        for _ in range(rounds):
            for symbol in symbols:
                level[symbol] += 1  # always growing: each quote offers exactly 1 more
                emulator.book_ticker(symbol, "10", str(level[symbol]), "11", "1")
            await asyncio.sleep(0.005)

    await blast(20)
    victim, survivor = cluster.executors
    seen = {
        o["order_id"]: len(
            (await cluster.apis[0].request("GET", f"/orders/{o['order_id']}"))[1]["fills"]
        )
        for o in orders
    }
    await victim.kill()
    took = await cluster.wait_balanced([survivor], timeout=15)
    assert took < 15
    for symbol in symbols:
        await emulator.wait_subscribed(stream(symbol), timeout=10)
    await blast(60)
    for order in orders:
        await cluster.apis[1].wait_for_order(
            order["order_id"], lambda o: o["status"] == "filled", timeout=20
        )
    stored = await _check_store(postgres_store_url)
    for order_id, fills_before in seen.items():
        assert stored[order_id][2] >= fills_before, "a fill seen before the kill was lost"
    assert all(status == "filled" for status, _, _ in stored.values())


async def test_sigterm_hands_an_executors_partitions_over_at_once(cluster: Cluster) -> None:
    await cluster.start(apis=1)
    await cluster.wait_balanced(cluster.executors)
    for process in [*cluster.executors, *cluster.apis]:  # ready: store and bus reachable
        status, ready = await process.request("GET", "/readyz")
        assert status == 200 and (ready["database"], ready["bus"]) == ("ok", "ok")
    leaving, staying = cluster.executors
    assert await leaving.terminate() == 0
    took = await cluster.wait_balanced([staying], timeout=5)
    assert took < 3, f"handover took {took:.1f} s"


async def test_the_book_channel_works_on_an_api_process(
    cluster: Cluster, emulator: BinanceEmulator
) -> None:
    await cluster.start(apis=1)
    await cluster.wait_balanced(cluster.executors)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{cluster.apis[0].url}/ws?book=BKUSDT") as ws,
    ):
        assert (await ws.receive_json()) == {
            "type": "subscribed",
            "channel": "book",
            "symbol": "BKUSDT",
        }
        await emulator.wait_subscribed(stream("BKUSDT"), timeout=10)  # by its executor
        async with asyncio.timeout(10):
            while True:
                emulator.book_ticker("BKUSDT", "10", "1", "11", "2")
                try:
                    async with asyncio.timeout(0.5):
                        message = await ws.receive_json()
                except TimeoutError:
                    continue  # the first quotes may go out before the channel is heard
                break
    assert message["type"] == "book" and message["symbol"] == "BKUSDT"
    assert (message["bid"], message["ask_qty"]) == ("10", "2")
