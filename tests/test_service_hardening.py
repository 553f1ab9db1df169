"""Issue 9 regressions in the order service and the store: torn reads, cancel races,
liquidity across restarts, poison quotes in the engine, non-retryable commit errors and
idle symbols."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.adapters.sqlite_store import SqliteStore
from app.core.domain import OrderStatus, Side
from app.core.order import Order
from app.intake.service import OrderAlreadyFinal
from app.ports import OrderChange
from tests.harness import Harness, order_request


def _request(**fields: object) -> Any:
    return order_request(**fields)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "orders.db")
    yield opened
    await opened.close()


@pytest.fixture
async def running(store: SqliteStore) -> AsyncIterator[Harness]:
    service = Harness(store)
    await service.start()
    yield service
    await service.stop()


# -- defect 2: an order and its fills are read as one committed state ----------------------


async def test_an_order_is_never_read_torn_from_its_fills(store: SqliteStore) -> None:
    order = Order(
        order_id="o1", owner="me", client_order_id=None, symbol="LTCBTC", side=Side.SELL,
        order_size=Decimal(1000), price=Decimal(1), timeout_s=30, status=OrderStatus.OPEN,
        created_at_us=1, updated_at_us=1, expires_at_us=10**18,
    )  # fmt: skip
    await store.insert_order(order)
    done = asyncio.Event()

    async def write_fills() -> None:
        for n in range(1, 301):
            fill = order.record_fill(n, Decimal(1), Decimal(1), n)
            await store.apply([OrderChange(order, [fill])])
        done.set()

    writer = asyncio.create_task(write_fills())
    reads = torn = 0
    while not done.is_set():
        seen = await store.get("o1")
        assert seen is not None
        reads += 1
        if sum((f.qty for f in seen.fills), Decimal(0)) != seen.filled_qty:
            torn += 1
        if len(seen.fills) != seen.fill_count:
            torn += 1
    await writer
    assert reads > 50
    assert torn == 0, f"{torn} of {reads} reads saw fills that do not add up to the order"


# -- defect 3: a cancel racing a fill or an expiry answers what is stored ------------------


class GatedStore(SqliteStore):
    """While `gate` is set up, the next `get` reads, says so, then waits for the gate."""

    gate: asyncio.Event | None = None
    read_while_gated: asyncio.Event | None = None

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        order = await super().get(order_id, with_fills=with_fills)
        gate, self.gate = self.gate, None
        if gate is not None:
            assert self.read_while_gated is not None
            self.read_while_gated.set()
            await gate.wait()
        return order


@pytest.mark.parametrize("ending", ["fill", "expiry"])
async def test_a_cancel_that_loses_a_race_answers_409_not_503(tmp_path: Path, ending: str) -> None:
    store = await GatedStore.open(tmp_path / "gated.db")
    service = Harness(store)
    await service.start()
    try:
        timeout = 0.3 if ending == "expiry" else 30
        order, *_ = await service.intake.submit(
            "me", _request(order_size="1", price="1", timeout_s=timeout)
        )
        gate = store.gate = asyncio.Event()
        read = store.read_while_gated = asyncio.Event()
        cancel = asyncio.create_task(service.intake.cancel("me", order.order_id))
        await read.wait()  # the cancel has read the order while it was still open
        if ending == "fill":
            service.quote("1", "5")
            await service.event(order.order_id, "filled")
        else:
            await service.event(order.order_id, "expired")
        gate.set()
        with pytest.raises(OrderAlreadyFinal):
            await cancel
    finally:
        await service.stop()
        await store.close()


# -- defect 4: liquidity taken before a restart is not taken again after it ----------------


@pytest.mark.parametrize("shutdown", ["graceful", "crash"])
async def test_liquidity_taken_before_a_restart_is_not_taken_again(
    tmp_path: Path, shutdown: str
) -> None:
    path = tmp_path / "restart.db"
    store = await SqliteStore.open(path)
    first = Harness(store)
    await first.start()
    order, *_ = await first.intake.submit("me", _request(order_size="10", price="1"))
    first.quote("1", "3")  # takes all 3 shown at 1
    await first.event(order.order_id, "fill")
    if shutdown == "graceful":
        await first.stop()
    else:  # as kill -9 would: nothing is stopped, everything in memory is gone
        await first.crash()
    await store.close()

    store = await SqliteStore.open(path)
    second = Harness(store)
    second.update_id = first.update_id
    await second.start()
    try:
        second.quote("1", "3")  # the same 3 shown again: nothing new to take
        second.quote("1", "5")  # it grew by 2: only those 2 are new
        fill = await second.event(order.order_id, "fill")
        assert fill.fill is not None and fill.fill.qty == Decimal(2)
        stored = await store.get(order.order_id)
        assert stored is not None
        assert [(f.seq, f.qty) for f in stored.fills] == [(1, Decimal(3)), (2, Decimal(2))]
    finally:
        await second.stop()
        await store.close()


# -- defect 1 (engine side): a quote the engine cannot take never stops a symbol -----------


@pytest.mark.parametrize("poison", ["1." + "1" * 149, "1E+999999"])
async def test_a_poison_quote_neither_kills_the_symbol_nor_keeps_orders_past_expiry(
    running: Harness, poison: str
) -> None:
    service = running.intake
    # Size 10: a fill's value at that price is beyond what exact arithmetic can hold.
    doomed, *_ = await service.submit("me", _request(order_size="10", price="1", timeout_s=0.5))
    other, *_ = await service.submit("me", _request(order_size="1", price="50"))
    running.quote(poison, "10")  # a bid the sell at 1 would take, at an absurd price
    expired = await running.event(doomed.order_id, "expired", timeout=5)
    assert expired.order.status is OrderStatus.EXPIRED
    async with asyncio.timeout(5):
        cancelled = await service.cancel("me", other.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    fresh, *_ = await service.submit("me", _request(order_size="1", price="1"))
    running.quote("1", "1")
    await running.event(fresh.order_id, "filled")


# -- a commit error that cannot succeed on a retry is not retried forever -----------------


class RefusingStore(SqliteStore):
    """Refuses, as a bug would, every change that carries a fill of `refused_order`."""

    refused_order = ""

    async def apply(self, changes: Any, market: Any = None, *rest: Any, **account: Any) -> None:
        if any(c.order.order_id == self.refused_order and c.new_fills for c in changes):
            raise ValueError("a change the store cannot take")
        await super().apply(changes, market, *rest, **account)


async def test_a_commit_that_cannot_succeed_is_not_retried_forever(tmp_path: Path) -> None:
    store = await RefusingStore.open(tmp_path / "refusing.db")
    service = Harness(store)
    await service.start()
    try:
        bad, *_ = await service.intake.submit("me", _request(order_size="1", price="1"))
        other, *_ = await service.intake.submit("me", _request(order_size="1", price="50"))
        store.refused_order = bad.order_id
        service.quote("1", "1")
        async with asyncio.timeout(5):  # the symbol still answers
            cancelled = await service.intake.cancel("me", other.order_id)
        assert cancelled.status is OrderStatus.CANCELLED
        stored = await store.get(bad.order_id)
        assert stored is not None and stored.status is OrderStatus.OPEN and not stored.fills
    finally:
        await service.stop()
        await store.close()


# -- defect 6: an idle symbol keeps nothing ------------------------------------------------


async def test_idle_symbols_release_their_workers(store: SqliteStore) -> None:
    service = Harness(store, idle_worker_s=0.05)
    await service.start()
    try:
        orders = []
        for n in range(40):
            order, *_ = await service.intake.submit(
                "me", _request(symbol=f"SYM{n}", order_size="1", price="1")
            )
            orders.append(order)
        assert service.executor.state()["workers"] == 40
        for order in orders:
            await service.intake.cancel("me", order.order_id)
        async with asyncio.timeout(5):
            while service.executor.state()["workers"]:  # noqa: ASYNC110 (no event to await)
                await asyncio.sleep(0.02)  # the workers stop on their own timers
        # A symbol used again gets a fresh worker, which works as before.
        again, *_ = await service.intake.submit(
            "me", _request(symbol="SYM1", order_size="1", price="1")
        )
        assert service.executor.state()["workers"] == 1
        cancelled = await service.intake.cancel("me", again.order_id)
        assert cancelled.status is OrderStatus.CANCELLED
    finally:
        await service.stop()
