"""SQLite group commit: new orders of a batch go in together, in their place among the
other writes of the batch."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from app.adapters.sqlite_store import SqliteStore
from app.core.domain import OrderStatus, Side
from app.core.order import Order
from app.ports import DuplicateClientOrderId, OrderChange


def _order(n: int, client_order_id: str | None = None) -> Order:
    return Order(
        order_id=f"order-{n}", owner="alice", client_order_id=client_order_id,
        symbol="BTCUSDT", side=Side.BUY, order_size=Decimal("2"), price=Decimal("10.5"),
        timeout_s=30.0, status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n,
        expires_at_us=n + 30_000_000,
    )  # fmt: skip


async def test_a_write_after_new_orders_in_its_batch_sees_them(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "orders.db")
    try:
        first, second, third = _order(1), _order(2), _order(3)
        fill = first.record_fill(7, Decimal("10.5"), Decimal("1"), 10)
        commits = store.commits
        # One batch: two new orders, a fill of the first (which must find it), one more.
        await asyncio.gather(
            store.insert_order(_order(1)),
            store.insert_order(second),
            store.apply([OrderChange(first, [fill])]),
            store.insert_order(third),
        )
        assert store.commits == commits + 1
        stored = await store.get("order-1")
        assert stored is not None and stored.filled_qty == Decimal("1") and len(stored.fills) == 1
        assert {o.order_id for o in await store.open_orders()} == {"order-1", "order-2", "order-3"}
    finally:
        await store.close()


async def test_a_refused_new_order_leaves_the_rest_of_its_batch_in(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "orders.db")
    try:
        results = await asyncio.gather(
            *(store.insert_order(_order(n, client_order_id=f"k{n % 5}")) for n in range(10)),
            return_exceptions=True,
        )
        refused = [n for n, result in enumerate(results) if result is not None]
        assert refused == list(range(5, 10))
        assert all(isinstance(results[n], DuplicateClientOrderId) for n in refused)
        assert sorted(o.order_id for o in await store.open_orders()) == [
            f"order-{n}" for n in range(5)
        ]
    finally:
        await store.close()
