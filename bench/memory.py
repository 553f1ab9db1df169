"""Bytes per resting order, everything counted that a resting order costs in the service.

Each order is made the way the service makes one: the request body parsed by the HTTP
model (`LimitOrderRequest`, so its symbol and decimals are fresh objects, as they are per
request), the `Order` built as intake builds it, then sent as an `AddOrder` command to a
real `Executor`, whose symbol worker rests it (engine view, price buckets, indexes,
expiry entry) and whose own bookkeeping notes it. tracemalloc counts what is still
allocated once every worker holds every order, the command objects gone: that divided by
the number of orders. Prices repeat over 500 levels and sizes over 10, as many clients
quoting a few levels do; `distinct=True` gives every order a price and size of its own.
`run_memory_recovered` counts what a restart leaves resting (orders resumed from SQLite).

    python -m bench.memory [resting]
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from app.adapters.inprocess import InProcessBus
from app.adapters.local_limiter import LocalLimiter
from app.adapters.sqlite_store import SqliteStore
from app.clock import now_us
from app.core.commands import AddOrder
from app.core.domain import OrderStatus
from app.core.order import Order
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.execution.worker import StreamLost
from app.ids import new_order_id
from app.schemas import LimitOrderRequest
from app.tasks import TaskSupervisor

SYMBOLS = 10
OWNER = "bench-owner"  # the authenticated owner: one object per API key, not per request


class _NullStore:
    async def apply(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def market_state(self, symbol: str) -> None:
        return None

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        return []

    async def position(self, owner: str, symbol: str) -> None:
        return None  # nothing traded yet: the resting orders measured never fill


class _NullFeed:
    def acquire(self, symbol: str) -> None:
        pass

    def release(self, symbol: str) -> None:
        pass

    def down_since(self, symbol: str | None = None) -> float | None:
        return None


def _request_bodies(resting: int, distinct: bool) -> list[bytes]:
    bodies = []
    for n in range(resting):
        price = f"{1000 + n}.5" if distinct else f"{1000 + n % 500}.5"
        size = f"1.{n}" if distinct else f"1.{n % 10}"
        bodies.append(
            b'{"symbol": "SYM%dUSDT", "side": "sell", "order_size": "%s", "price": "%s", '
            b'"timeout_s": 3600}' % (n % SYMBOLS, size.encode(), price.encode())
        )
    return bodies


def _accepted(body: bytes) -> Order:
    """The order as intake makes it from a parsed request (app/intake/service.py)."""
    request = LimitOrderRequest.model_validate_json(body)
    created = now_us()
    timeout_s = request.timeout_s or 30.0
    return Order(
        order_id=new_order_id(), owner=OWNER, client_order_id=request.client_order_id,
        symbol=request.symbol, side=request.side, order_size=request.order_size,
        price=request.price, timeout_s=timeout_s, status=OrderStatus.OPEN,
        created_at_us=created, updated_at_us=created,
        expires_at_us=created + round(timeout_s * 1_000_000),
    )  # fmt: skip


async def _held(executor: Executor) -> int:
    return sum(len(worker.orders) for worker in executor._workers.values())


async def run_memory(resting: int, *, distinct: bool = False) -> dict[str, float]:
    """Bytes per resting order with `resting` orders resting over SYMBOLS symbols."""
    bodies = _request_bodies(resting, distinct)
    tasks = TaskSupervisor()
    executor = Executor(
        _NullStore(),  # type: ignore[arg-type]
        InProcessBus(),
        MarketInterest(_NullFeed()),
        LocalLimiter(1_000_000, 0),
        tasks,
    )
    await executor.start()
    for symbol in range(SYMBOLS):  # the workers exist before counting: not per order
        executor._worker(f"SYM{symbol}USDT")
    await asyncio.sleep(0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, resting, 10_000):
            for body in bodies[start : start + 10_000]:
                executor.on_command(AddOrder(_accepted(body)))
            while await _held(executor) < min(resting, start + 10_000):
                await asyncio.sleep(0)
        # One more round per worker, so none still holds its last batch of commands.
        for worker in executor._workers.values():
            worker.submit(StreamLost())
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    held = await _held(executor)
    await executor.stop()
    await asyncio.sleep(0.05)
    assert held == resting, f"{held} of {resting} orders resting"
    return {"resting": resting, "bytes_per_order": (after - before) / resting}


async def run_memory_recovered(resting: int) -> dict[str, float]:
    """The same, for orders resumed at start from SQLite (bench/restart.py's database:
    a quarter partly filled, each symbol with a ledger): what a restart leaves resting."""
    from bench.restart import write_open_orders

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.db"
        write_open_orders(path, resting)
        store = await SqliteStore.open(path)
        tasks = TaskSupervisor()
        executor = Executor(
            store, InProcessBus(), MarketInterest(_NullFeed()), LocalLimiter(1_000_000, 0), tasks
        )
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await executor.start()  # returns once the workers hold every order
            for worker in executor._workers.values():
                worker.submit(StreamLost())
            for _ in range(5):
                await asyncio.sleep(0)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        held = executor.open_count
        await executor.stop()
        await tasks.close()
        await store.close()
    assert held == resting, f"{held} of {resting} orders resting"
    return {"resting": resting, "bytes_per_order": (after - before) / resting}


async def _main(resting: int) -> None:
    print(await run_memory(resting))
    print({"distinct prices and sizes": await run_memory(resting, distinct=True)})
    print({"after a restart": await run_memory_recovered(resting)})


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
