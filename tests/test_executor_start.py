"""Start-up recovery: the executor is ready once its workers hold every open order, their
ledgers restored, not merely once the orders are handed to them."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from app.adapters.inprocess import InProcessBus
from app.adapters.local_limiter import LocalLimiter
from app.adapters.memory_store import MemoryStore
from app.clock import now_us
from app.core.domain import MarketState, OrderStatus, Side
from app.core.order import Order
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.tasks import TaskSupervisor
from tests.harness import FakeFeed


class SlowLedgerStore(MemoryStore):
    """Its market state answers only once `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.asked = asyncio.Event()

    async def market_state(self, symbol: str) -> MarketState | None:
        self.asked.set()
        await self.answer.wait()
        return await super().market_state(symbol)


def _open_order(n: int, symbol: str) -> Order:
    created = now_us()
    return Order(
        order_id=f"o{n}", owner="alice", client_order_id=None, symbol=symbol, side=Side.SELL,
        order_size=Decimal("1.5"), price=Decimal(100 + n), timeout_s=60.0,
        status=OrderStatus.OPEN, created_at_us=created, updated_at_us=created,
        expires_at_us=created + 60_000_000,
    )  # fmt: skip


async def test_ready_only_once_every_worker_holds_its_orders_with_its_ledger() -> None:
    store = SlowLedgerStore()
    for n in range(6):
        await store.insert_order(_open_order(n, "AAAUSDT" if n % 2 else "BBBUSDT"))
    ledger = MarketState("AAAUSDT", 41, asks=((Decimal(101), Decimal("0.5")),), bids=())
    await store.apply([], ledger)
    tasks = TaskSupervisor()
    executor = Executor(
        store, InProcessBus(), MarketInterest(FakeFeed()), LocalLimiter(0, 0), tasks
    )
    starting = asyncio.create_task(executor.start())
    await store.asked.wait()
    await asyncio.sleep(0.05)  # time enough to finish, were it not waiting for the ledger
    assert not starting.done() and not executor.ready
    store.answer.set()
    await asyncio.wait_for(starting, 5)
    assert executor.ready and executor.open_count == 6
    assert sys.getsizeof(executor._unheld) == sys.getsizeof(set())  # no table left behind
    workers = executor._workers
    assert workers["AAAUSDT"].matcher.ledger("asks") == [(Decimal(101), Decimal("0.5"))]
    assert workers["AAAUSDT"].matcher.last_update_id == 41
    assert len(workers["AAAUSDT"].matcher) == len(workers["BBBUSDT"].matcher) == 3
    await executor.stop()
    await tasks.close()


async def test_ready_at_once_with_nothing_open_and_past_expiry_orders_not_waited_for() -> None:
    store = MemoryStore()
    late = _open_order(1, "AAAUSDT")
    late.expires_at_us = now_us() - 1
    await store.insert_order(late)
    tasks = TaskSupervisor()
    executor = Executor(
        store, InProcessBus(), MarketInterest(FakeFeed()), LocalLimiter(0, 0), tasks
    )
    await asyncio.wait_for(executor.start(), 5)
    assert executor.ready and executor.open_count == 0
    stored = await store.get("o1")
    assert stored is not None and stored.status is OrderStatus.EXPIRED
    await executor.stop()
    await tasks.close()
