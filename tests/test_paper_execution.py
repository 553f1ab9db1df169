"""Execution of IOC/FOK and market orders, and fees, on the service without HTTP: an order
that meets its quote ends in the same commit as that quote's fills, pushed after them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.adapters.memory_store import MemoryStore
from app.adapters.sqlite_store import SqliteStore
from app.core.domain import BookTicker, MarketState, OrderStatus
from app.core.events import OrderEvent
from app.ports import Fence, OrderChange
from app.schemas import MarketOrderRequest
from tests.harness import Harness

D = Decimal


class RecordingStore(MemoryStore):
    """Remembers what each commit held: (order id, status, new fills) per change."""

    def __init__(self) -> None:
        super().__init__()
        self.commits_made: list[list[tuple[str, OrderStatus, int]]] = []

    async def apply(
        self,
        changes: Sequence[OrderChange],
        market: MarketState | None = None,
        events: Sequence[OrderEvent] = (),
        fence: Fence | None = None,
        **account: Any,
    ) -> None:
        await super().apply(changes, market, events, fence, **account)
        if changes:
            self.commits_made.append(
                [(c.order.order_id, c.order.status, len(c.new_fills)) for c in changes]
            )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(RecordingStore())
    await h.start()
    yield h
    await h.stop()


async def _events_until_final(harness: Harness, order_id: str) -> list[OrderEvent]:
    seen: list[OrderEvent] = []
    while not seen or not seen[-1].kind.is_final:
        event = await harness.next_event()
        if event.order_id == order_id:
            seen.append(event)
    return seen


async def test_an_ioc_ends_in_the_commit_of_its_quotes_fills(harness: Harness) -> None:
    order = await harness.submit(order_size="5", price="10", time_in_force="IOC")
    harness.quote("10", "2")  # its first quote: 2 of 5
    events = await _events_until_final(harness, order.order_id)
    assert [e.kind for e in events] == ["accepted", "fill", "expired"]
    fill_event, expired = events[1], events[2]
    assert fill_event.fill is not None and fill_event.fill.qty == D(2)
    assert expired.order.filled_qty == D(2) and expired.order.status is OrderStatus.EXPIRED
    store: Any = harness.store
    assert store.commits_made == [[(order.order_id, OrderStatus.EXPIRED, 1)]]
    harness.quote("10", "9")  # later quotes do not concern it
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.filled_qty == D(2) and len(stored.fills) == 1


async def test_fills_carry_fees_at_the_workers_rate(harness: Harness) -> None:
    request = MarketOrderRequest.model_validate(
        {"symbol": "LTCBTC", "side": "buy", "order_size": "3"}
    )
    order, _ = await harness.intake.submit("me", request)
    assert order.price is None and order.fee_asset == "LTC"
    harness.quote("0.0024", "5", "0.0025", "3")
    events = await _events_until_final(harness, order.order_id)
    assert [e.kind for e in events] == ["accepted", "fill", "filled"]
    fill = events[1].fill
    assert fill is not None and (fill.price, fill.qty) == (D("0.0025"), D(3))
    assert (fill.fee, fill.fee_asset) == (D("0.003"), "LTC")  # 3 x 0.001, in LTC
    assert events[2].order.fees == D("0.003")


async def test_an_ioc_waiting_at_a_restart_meets_the_first_quote_after_it(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / "orders.db")
    try:
        before = Harness(store)
        await before.start()
        order = await before.submit(order_size="5", price="10", time_in_force="FOK")
        await before.stop()
        after = Harness(store)
        await after.start()
        try:
            after.quote("10", "5")  # the first quote since the restart: it fills it all
            filled = await after.event(order.order_id, "filled")
            assert filled.order.filled_qty == D(5) and filled.order.fees == D("0.05")
        finally:
            await after.stop()
    finally:
        await store.close()


async def test_a_waiting_ioc_ends_on_a_ticker_that_fills_nothing(harness: Harness) -> None:
    """A ticker that fills nothing may be applied without the batch loop (a waiting worker
    takes it at once); an IOC waiting for its first quote must still end on it."""
    resting = await harness.submit(order_size="1", price="50")
    order = await harness.submit(order_size="5", price="10", time_in_force="IOC")
    harness.executor.on_update(BookTicker("LTCBTC", 1, ("5", "3", "100", "1"), time.time()))
    expired = await harness.event(order.order_id, "expired")
    assert expired.order.reason == "expired: IOC: the quote did not fill the rest of the order"
    assert expired.order.filled_qty == 0
    stored = await harness.store.get(resting.order_id)
    assert stored is not None and stored.status is OrderStatus.OPEN
