"""The SQLite store's reads see every commit made before they start, however many reads
interleave on its reader connection (a cancel-all has dozens in flight at once)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from app.adapters.sqlite_store import SqliteStore
from app.core.domain import OrderStatus, Side
from app.core.order import Order
from app.ports import OrderChange


def _order(n: int) -> Order:
    return Order(
        order_id=f"o{n}", owner="me", client_order_id=None, symbol="LTCBTC", side=Side.SELL,
        order_size=Decimal(1), price=Decimal(1), timeout_s=30, status=OrderStatus.OPEN,
        created_at_us=n, updated_at_us=n, expires_at_us=10**18,
    )  # fmt: skip


async def test_a_read_after_a_commit_sees_it_while_other_reads_interleave(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "orders.db")
    orders = [_order(n) for n in range(200)]
    try:
        for order in orders:
            await store.insert_order(order)
        stop = asyncio.Event()

        async def keep_reading(offset: int) -> None:
            n = offset
            while not stop.is_set():  # reads always in flight on the reader connection
                await store.get(orders[n % len(orders)].order_id)
                await store.list_orders("me", status=None, symbol=None, limit=5, cursor=None)
                n += 1

        readers = [asyncio.create_task(keep_reading(k)) for k in range(32)]
        stale = 0
        try:
            for order in orders[:50]:
                order.finish(OrderStatus.CANCELLED, "cancelled by request", order.created_at_us)
                await store.apply([OrderChange(order)])
                seen = await store.get(order.order_id)
                assert seen is not None
                stale += seen.status is not OrderStatus.CANCELLED
                page = await store.list_orders(
                    "me", status=OrderStatus.CANCELLED, symbol=None, limit=500, cursor=None
                )
                stale += order.order_id not in {o.order_id for o in page.orders}
        finally:
            stop.set()
            await asyncio.gather(*readers)
        assert stale == 0, f"{stale} reads saw the store as it was before a commit"
    finally:
        await store.close()
