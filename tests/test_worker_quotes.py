"""A symbol worker waiting for commands takes a quote that changes nothing at once,
without its queue; any other quote, or one behind a queued command, goes through the
queue in order."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from app.adapters.inprocess import InProcessBus
from app.adapters.memory_store import MemoryStore
from app.clock import now_us
from app.core.domain import BookTicker, OrderStatus, Side
from app.core.order import Order
from app.execution.worker import Add, Cancel, Stop, SymbolWorker
from tests.harness import FakeFeed


def _sell(order_id: str, price: str) -> Order:
    created = now_us()
    return Order(
        order_id=order_id, owner="alice", client_order_id=None, symbol="XUSDT", side=Side.SELL,
        order_size=Decimal("1"), price=Decimal(price), timeout_s=60.0, status=OrderStatus.OPEN,
        created_at_us=created, updated_at_us=created, expires_at_us=created + 60_000_000,
    )  # fmt: skip


def _ticker(update_id: int, bid: str) -> BookTicker:
    return BookTicker("XUSDT", update_id, (bid, "5", "0", "0"), 1.0)


async def _started(*orders: Order) -> tuple[SymbolWorker, MemoryStore, asyncio.Task[None]]:
    store = MemoryStore()
    for order in orders:
        await store.insert_order(order)
    worker = SymbolWorker("XUSDT", store, InProcessBus(), FakeFeed())
    task = asyncio.create_task(worker.run())
    for order in orders:
        worker.submit(Add(order))
    await _idle(worker)
    return worker, store, task


async def _idle(worker: SymbolWorker) -> None:
    """Until what was queued is processed and committed, and the worker waits again."""
    while worker._commands or not worker._waiting:  # noqa: ASYNC110 (no event says "waiting")
        await asyncio.sleep(0)


async def test_a_quote_that_fills_nothing_is_applied_at_once() -> None:
    worker, _, task = await _started(_sell("a", "100"))
    worker.submit(_ticker(7, "90.5"))
    assert not worker._commands  # not queued
    assert worker.matcher.last_update_id == 7 and worker.updates_applied == 1
    assert worker.matcher.quote is not None and worker.matcher.quote.update_id == 7
    worker.submit(_ticker(7, "150"))  # stale (rule 1): skipped, even though it would fill
    assert worker.updates_skipped == 1 and worker.fills == 0
    worker.submit(Stop())
    await task


async def test_a_quote_that_may_fill_goes_through_the_queue_and_fills() -> None:
    worker, store, task = await _started(_sell("a", "100"))
    worker.submit(_ticker(8, "100.0"))
    assert len(worker._commands) == 1
    await _idle(worker)
    stored = await store.get("a")
    assert stored is not None and stored.status is OrderStatus.FILLED
    worker.submit(Stop())
    await task


async def test_a_quote_behind_a_queued_command_waits_its_turn() -> None:
    worker, store, task = await _started(_sell("a", "100"))
    worker.submit(Cancel("a"))
    worker.submit(_ticker(9, "90"))  # would change nothing, but the cancel comes first
    assert len(worker._commands) == 2 and worker.matcher.last_update_id is None
    await _idle(worker)
    stored = await store.get("a")
    assert stored is not None and stored.status is OrderStatus.CANCELLED
    assert worker.matcher.last_update_id == 9 and worker.fills == 0
    worker.submit(Stop())
    await task
