"""The order service and its per-symbol workers, with a fake feed and a real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from app.bus import InProcessBus, OrderEvent
from app.domain import BookUpdate, MarketState, OrderStatus
from app.schemas import LimitOrderRequest
from app.service.orders import OrderService
from app.store.base import OrderChange
from app.store.sqlite import SqliteStore
from app.tasks import TaskSupervisor


class FakeFeed:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down: dict[str, float] = {}

    def acquire(self, symbol: str) -> None:
        self.calls.append(("acquire", symbol))

    def release(self, symbol: str) -> None:
        self.calls.append(("release", symbol))

    def down_since(self, symbol: str) -> float | None:
        return self.down.get(symbol)


class FlakyStore(SqliteStore):
    """Fails the next `failures` change commits, as a full disk or a locked file would."""

    failures = 0
    attempts = 0

    async def apply(
        self, changes: Sequence[OrderChange], market: MarketState | None = None
    ) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        await super().apply(changes, market)


class Harness:
    def __init__(self, store: FlakyStore) -> None:
        self.store = store
        self.feed = FakeFeed()
        self.bus = InProcessBus()
        self.tasks = TaskSupervisor()
        self.service = OrderService(store, self.bus, self.feed, self.tasks, default_timeout_s=30)
        self.events: list[OrderEvent] = []
        self.subscription = self.bus.subscribe()
        self.update_id = 0

    async def next_event(self) -> OrderEvent:
        async with asyncio.timeout(5):
            event = await self.subscription.queue.get()
        assert event is not None
        return event

    def quote(self, symbol: str, bid: str, bid_qty: str, ask: str, ask_qty: str) -> None:
        self.update_id += 1
        self.service.on_update(
            BookUpdate(symbol, self.update_id, ((Decimal(bid), Decimal(bid_qty)),),
                       ((Decimal(ask), Decimal(ask_qty)),), received_at=time.time())
        )  # fmt: skip


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await FlakyStore.open(tmp_path / "orders.db")
    h = Harness(store)  # type: ignore[arg-type]
    await h.service.start()
    yield h
    await h.service.stop()
    await h.tasks.close()
    await store.close()


def _request(**fields: object) -> LimitOrderRequest:
    return LimitOrderRequest.model_validate({"symbol": "LTCBTC", "side": "sell", **fields})


async def test_a_fill_is_published_only_after_it_is_committed(harness: Harness) -> None:
    order, *_ = await harness.service.submit("me", _request(order_size="2", price="1"))
    assert (await harness.next_event()).event == "accepted"
    harness.store.failures = 2
    harness.quote("LTCBTC", "1", "5", "2", "1")
    event = await harness.next_event()
    assert event.event == "fill" and harness.store.attempts == 3
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.filled_qty == Decimal(2)
    assert (await harness.next_event()).event == "filled"


async def test_feed_is_acquired_with_the_first_order_and_released_after_the_last(
    harness: Harness,
) -> None:
    await harness.service.submit("me", _request(order_size="1", price="1"))
    second, *_ = await harness.service.submit("me", _request(order_size="1", price="1"))
    harness.quote("LTCBTC", "1", "1", "2", "1")
    for _ in range(4):
        await harness.next_event()
    assert harness.feed.calls == [("acquire", "LTCBTC")]
    await harness.service.cancel("me", second.order_id)
    assert harness.feed.calls == [("acquire", "LTCBTC"), ("release", "LTCBTC")]


async def test_updates_queued_during_a_commit_are_handled_in_one_batch(harness: Harness) -> None:
    order, *_ = await harness.service.submit("me", _request(order_size="100", price="1"))
    await harness.next_event()
    commits = harness.store.commits
    for n in range(1, 51):
        harness.quote("LTCBTC", "1", str(n), "2", "1")  # each grows the level by 1
    for _ in range(50):
        assert (await harness.next_event()).event == "fill"
    assert harness.store.commits - commits < 50
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.filled_qty == Decimal(50) and stored.fill_count == 50


async def test_another_owner_sees_nothing(harness: Harness) -> None:
    order, *_ = await harness.service.submit("alice", _request(order_size="1", price="1"))
    from app.service.orders import OrderNotFound

    with pytest.raises(OrderNotFound):
        await harness.service.get("mallory", order.order_id)
    with pytest.raises(OrderNotFound):
        await harness.service.cancel("mallory", order.order_id)
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.status is OrderStatus.OPEN
