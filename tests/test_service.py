"""Intake and execution on a real store and a fake feed: commits before pushes, batching,
feed subscriptions, owners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.adapters.sqlite_store import SqliteStore
from app.core.domain import MarketState, OrderStatus
from app.intake.service import OrderNotFound
from app.ports import OrderChange
from tests.harness import Harness, order_request


class FlakyStore(SqliteStore):
    """Fails the next `failures` change commits, as a full disk or a locked file would."""

    failures = 0
    attempts = 0

    async def apply(
        self,
        changes: Sequence[OrderChange],
        market: MarketState | None = None,
        *rest: Any,
        **account: Any,
    ) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        await super().apply(changes, market, *rest, **account)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = await FlakyStore.open(tmp_path / "orders.db")
    h = Harness(store)
    await h.start()
    yield h
    await h.stop()
    await store.close()


def _request(**fields: object) -> Any:
    return order_request(**fields)


async def test_a_fill_is_published_only_after_it_is_committed(harness: Harness) -> None:
    order, *_ = await harness.intake.submit("me", _request(order_size="2", price="1"))
    assert (await harness.next_event()).kind == "accepted"
    harness.store.failures = 2
    harness.quote("1", "5", "2", "1")
    event = await harness.next_event()
    assert event.kind == "fill" and harness.store.attempts == 3
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.filled_qty == Decimal(2)
    assert (await harness.next_event()).kind == "filled"


async def test_feed_is_acquired_with_the_first_order_and_released_after_the_last(
    harness: Harness,
) -> None:
    await harness.intake.submit("me", _request(order_size="1", price="1"))
    second, *_ = await harness.intake.submit("me", _request(order_size="1", price="1"))
    harness.quote("1", "1", "2", "1")
    for _ in range(4):
        await harness.next_event()
    assert harness.feed.calls == [("acquire", "LTCBTC")]
    await harness.intake.cancel("me", second.order_id)
    assert harness.feed.calls == [("acquire", "LTCBTC"), ("release", "LTCBTC")]


async def test_updates_queued_during_a_commit_are_handled_in_one_batch(harness: Harness) -> None:
    order, *_ = await harness.intake.submit("me", _request(order_size="100", price="1"))
    await harness.next_event()
    commits = harness.store.commits
    for n in range(1, 51):
        harness.quote("1", str(n), "2", "1")  # each grows the level by 1
    for _ in range(50):
        assert (await harness.next_event()).kind == "fill"
    assert harness.store.commits - commits < 50
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.filled_qty == Decimal(50) and stored.fill_count == 50


async def test_another_owner_sees_nothing(harness: Harness) -> None:
    order, *_ = await harness.intake.submit("alice", _request(order_size="1", price="1"))
    with pytest.raises(OrderNotFound):
        await harness.intake.get("mallory", order.order_id)
    with pytest.raises(OrderNotFound):
        await harness.intake.cancel("mallory", order.order_id)
    stored = await harness.store.get(order.order_id)
    assert stored is not None and stored.status is OrderStatus.OPEN
