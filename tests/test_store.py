"""The SQLite store: migrations, group commit, atomic changes, exact decimals."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from app.adapters.migrations import MIGRATIONS
from app.adapters.sqlite_store import SqliteStore
from app.core.domain import OrderStatus, Side
from app.core.order import Order
from app.ports import DuplicateClientOrderId, OrderChange, StoreError


def _order(n: int, *, client_order_id: str | None = None, owner: str = "alice") -> Order:
    return Order(
        order_id=f"order-{n}", owner=owner, client_order_id=client_order_id,
        symbol="BTCUSDT", side=Side.BUY, order_size=Decimal("1.000000000000000001"),
        price=Decimal("12345678901234567890.123456789012345678"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n, expires_at_us=n + 30_000_000,
    )  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    opened = await SqliteStore.open(tmp_path / "orders.db")
    yield opened  # type: ignore[misc]
    await opened.close()


async def test_schema_version_and_wal(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.close()
    again = await SqliteStore.open(tmp_path / "a.db")  # migrating twice is a no-op
    await again.close()
    db = sqlite3.connect(tmp_path / "a.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore.open(tmp_path / "new.db")


async def test_round_trip_is_exact(store: SqliteStore) -> None:
    order = _order(1)
    await store.insert_order(order)
    loaded = await store.get("order-1")
    assert loaded is not None
    assert loaded.price == order.price and loaded.order_size == order.order_size
    assert loaded.status is OrderStatus.OPEN and loaded.fills == []


async def test_concurrent_writes_share_commits(store: SqliteStore) -> None:
    await asyncio.gather(*(store.insert_order(_order(n)) for n in range(200)))
    assert store.commits < 200  # grouped, yet every await returned after its commit
    assert len(await store.open_orders()) == 200


async def test_a_failing_write_does_not_undo_its_batch_mates(store: SqliteStore) -> None:
    await store.insert_order(_order(0, client_order_id="k"))
    results = await asyncio.gather(
        store.insert_order(_order(1)),
        store.insert_order(_order(2, client_order_id="k")),
        store.insert_order(_order(3)),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], DuplicateClientOrderId)
    assert await store.get("order-2") is None
    assert await store.get("order-3") is not None
    # The same key for another owner is fine.
    await store.insert_order(_order(4, client_order_id="k", owner="bob"))


async def test_a_refused_write_in_a_batch_of_fills_undoes_only_itself(
    store: SqliteStore,
) -> None:
    # The batch runs plainly first; one refusal sends it round again with savepoints, and
    # what the first round wrote before the refusal must not be written twice.
    orders = [_order(n) for n in range(3)]
    for order in orders:
        await store.insert_order(order)
    fills = [
        order.record_fill(n, Decimal("1"), Decimal("0.5"), 10) for n, order in enumerate(orders)
    ]
    await store.apply([OrderChange(orders[1], [fills[1]])])
    results = await asyncio.gather(
        store.apply([OrderChange(orders[0], [fills[0]])]),
        store.apply([OrderChange(orders[1], [fills[1]])]),  # already stored: refused
        store.apply([OrderChange(orders[2], [fills[2]])]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and isinstance(results[1], StoreError)
    for order in orders:
        loaded = await store.get(order.order_id)
        assert loaded is not None and len(loaded.fills) == 1
        assert loaded.filled_qty == Decimal("0.5")


async def test_a_caller_that_gives_up_does_not_abort_its_write(store: SqliteStore) -> None:
    waiting = asyncio.create_task(store.insert_order(_order(1)))
    await asyncio.sleep(0)  # queued now
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await store.insert_order(_order(2))  # committed after (or with) the first one's batch
    assert await store.get("order-1") is not None


async def test_fills_and_totals_commit_together_or_not_at_all(store: SqliteStore) -> None:
    order = _order(1)
    await store.insert_order(order)
    fill = order.record_fill(7, Decimal("2.5"), Decimal("0.5"), 10)
    await store.apply([OrderChange(order, [fill])])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.filled_qty == Decimal("0.5")
    assert [(f.seq, f.price, f.qty) for f in loaded.fills] == [(1, Decimal("2.5"), Decimal("0.5"))]
    # Replaying the same fill (a duplicate) fails whole: totals do not move either.
    order.filled_qty = Decimal("0.9")
    with pytest.raises(StoreError):
        await store.apply([OrderChange(order, [fill])])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.filled_qty == Decimal("0.5") and len(loaded.fills) == 1


async def test_a_final_order_never_changes(store: SqliteStore) -> None:
    order = _order(1)
    await store.insert_order(order)
    order.finish(OrderStatus.CANCELLED, "by request", 5)
    await store.apply([OrderChange(order)])
    order.finish(OrderStatus.EXPIRED, "late", 6)
    with pytest.raises(StoreError):
        await store.apply([OrderChange(order)])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.status is OrderStatus.CANCELLED


async def test_list_pages_newest_first(store: SqliteStore) -> None:
    for n in range(5):
        await store.insert_order(_order(n))
    page = await store.list_orders("alice", status=None, symbol=None, limit=2, cursor=None)
    assert [o.order_id for o in page.orders] == ["order-4", "order-3"]
    page = await store.list_orders(
        "alice", status=None, symbol=None, limit=2, cursor=int(page.next_cursor)
    )
    assert [o.order_id for o in page.orders] == ["order-2", "order-1"]
    page = await store.list_orders(
        "alice", status=None, symbol=None, limit=2, cursor=int(page.next_cursor)
    )
    assert [o.order_id for o in page.orders] == ["order-0"] and page.next_cursor is None
    empty = await store.list_orders("bob", status=None, symbol=None, limit=2, cursor=None)
    assert empty.orders == []


async def test_list_queries_use_indexes(store: SqliteStore, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "orders.db")
    for where in ("owner = 'a'", "owner = 'a' AND status = 'open'", "owner = 'a' AND symbol = 'X'"):
        plan = " ".join(
            str(row[3]) for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM orders WHERE {where} ORDER BY seq DESC LIMIT 5"
            )
        )  # fmt: skip
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
