"""What only the SQLite store shows: its schema, WAL, group commit and query plans.

What every store must do (exact round trips, all-or-nothing changes, refusals that undo
only themselves, paging) is the store port's contract suite, tests/contracts/."""

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


async def test_concurrent_writes_share_commits(store: SqliteStore) -> None:
    await asyncio.gather(*(store.insert_order(_order(n)) for n in range(200)))
    assert store.commits < 200  # grouped, yet every await returned after its commit
    assert len(await store.open_orders()) == 200


async def test_a_caller_that_gives_up_does_not_abort_its_write(store: SqliteStore) -> None:
    waiting = asyncio.create_task(store.insert_order(_order(1)))
    await asyncio.sleep(0)  # queued now
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await store.insert_order(_order(2))  # committed after (or with) the first one's batch
    assert await store.get("order-1") is not None


async def test_list_queries_use_indexes(store: SqliteStore, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "orders.db")
    for where in ("owner = 'a'", "owner = 'a' AND status = 'open'", "owner = 'a' AND symbol = 'X'"):
        plan = " ".join(
            str(row[3]) for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM orders WHERE {where} ORDER BY seq DESC LIMIT 5"
            )
        )  # fmt: skip
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


async def test_open_orders_read_back_share_equal_values(store: SqliteStore) -> None:
    for n in range(3):
        await store.insert_order(_order(n))
    first, second, third = await store.open_orders()
    assert first.price is second.price is third.price
    assert first.order_size is second.order_size and first.filled_qty is second.notional
    assert first.symbol is third.symbol and first.owner is third.owner
    assert first.price == Decimal("12345678901234567890.123456789012345678")
    assert first.filled_qty == 0 and first.order_size == Decimal("1.000000000000000001")


async def test_an_order_read_back_unchanged_since_accepted_holds_one_time_object(
    store: SqliteStore,
) -> None:
    order = _order(1)
    order.created_at_us = order.updated_at_us = 1_764_000_000_000_001
    await store.insert_order(order)
    (loaded,) = await store.open_orders()
    assert loaded.updated_at_us is loaded.created_at_us == 1_764_000_000_000_001
    later = _order(2)
    later.created_at_us, later.updated_at_us = 1_764_000_000_000_001, 1_764_000_000_000_002
    await store.insert_order(later)
    _, changed = await store.open_orders()
    assert (changed.created_at_us, changed.updated_at_us) == (
        1_764_000_000_000_001, 1_764_000_000_000_002,
    )  # fmt: skip
