"""The store port's contract, written once and run against every adapter.

An adapter joins by adding a factory to `ADAPTERS`; what only one engine can show (SQLite's
WAL and query plans, say) stays in that adapter's own tests.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.adapters.memory_store import MemoryStore
from app.adapters.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from app.adapters.postgres_store import PostgresStore
from app.adapters.sqlite_store import SqliteStore
from app.core.account import (
    AssetBalance,
    InsufficientBalance,
    OpeningBalances,
    OwnerDelta,
    Position,
    assets_of,
    change_deltas,
    deltas_on_accept,
)
from app.core.domain import MarketState, OrderStatus, OrderType, Side, TimeInForce
from app.core.order import Order
from app.ports import (
    DuplicateClientOrderId,
    OrderChange,
    OrderStore,
    PositionUpdate,
    StoreError,
)
from tests.engine_postgres import postgres_store_url, postgres_url  # noqa: F401

D = Decimal


class Adapter:
    """Opens a store; `reopen` gives a new store on the same data (None: not durable)."""

    def __init__(
        self,
        open_store: Callable[[], Awaitable[Any]],
        durable: bool,
    ) -> None:
        self.open = open_store
        self.durable = durable


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    return Adapter(lambda: SqliteStore.open(tmp_path / "contract.db"), durable=True)


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    shared = MemoryStore()

    async def open_store() -> MemoryStore:
        return shared

    return Adapter(open_store, durable=False)


def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    # A fresh database per test on the session's server (skipped without PostgreSQL).
    url: str = request.getfixturevalue("postgres_store_url")
    return Adapter(lambda: PostgresStore.open(url), durable=True)


# Each factory gets the test's request (for fixtures it needs) and its tmp_path.
ADAPTERS: dict[str, Callable[[pytest.FixtureRequest, Path], Adapter]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Adapter:
    return ADAPTERS[request.param](request, tmp_path)


@pytest.fixture
async def store(adapter: Adapter) -> AsyncIterator[OrderStore]:
    opened = await adapter.open()
    yield opened
    await opened.close()


def _order(
    n: int, *, owner: str = "alice", symbol: str = "BTCUSDT", client_order_id: str | None = None
) -> Order:
    return Order(
        order_id=f"order-{n}", owner=owner, client_order_id=client_order_id, symbol=symbol,
        side=Side.BUY, order_size=D("1.000000000000000001"),
        price=D("12345678901234567890.123456789012345678"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n, expires_at_us=n + 30_000_000,
    )  # fmt: skip


async def test_an_order_round_trips_exactly(store: OrderStore) -> None:
    order = _order(1, client_order_id="key")
    await store.insert_order(order)
    loaded = await store.get("order-1")
    assert loaded is not None and loaded is not order
    assert (loaded.price, loaded.order_size) == (order.price, order.order_size)
    assert (loaded.owner, loaded.symbol, loaded.side) == ("alice", "BTCUSDT", Side.BUY)
    assert loaded.status is OrderStatus.OPEN and loaded.fills == []
    assert await store.get("nope") is None
    by_key = await store.get_by_client_order_id("alice", "key")
    assert by_key is not None and by_key.order_id == "order-1"
    assert await store.get_by_client_order_id("bob", "key") is None


async def test_a_duplicate_client_order_id_is_refused_alone(store: OrderStore) -> None:
    await store.insert_order(_order(0, client_order_id="k"))
    results = await asyncio.gather(
        store.insert_order(_order(1)),
        store.insert_order(_order(2, client_order_id="k")),
        store.insert_order(_order(3)),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], DuplicateClientOrderId)
    assert await store.get("order-2") is None and await store.get("order-3") is not None
    await store.insert_order(_order(4, client_order_id="k", owner="bob"))  # per owner


async def test_fills_and_totals_commit_together_or_not_at_all(store: OrderStore) -> None:
    order = _order(1)
    await store.insert_order(order)
    fill = order.record_fill(7, D("2.5"), D("0.5"), 10)
    await store.apply([OrderChange(order, [fill])])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.filled_qty == D("0.5") and loaded.fill_count == 1
    assert [(f.seq, f.update_id, f.price, f.qty) for f in loaded.fills] == [
        (1, 7, D("2.5"), D("0.5"))
    ]
    order.filled_qty = D("0.9")  # a replayed fill must move nothing
    with pytest.raises(StoreError):
        await store.apply([OrderChange(order, [fill])])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.filled_qty == D("0.5") and len(loaded.fills) == 1


async def test_a_refused_change_undoes_only_itself(store: OrderStore) -> None:
    orders = [_order(n) for n in range(3)]
    for order in orders:
        await store.insert_order(order)
    fills = [order.record_fill(n, D(1), D("0.5"), 10) for n, order in enumerate(orders)]
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


async def test_a_change_spanning_orders_is_all_or_nothing(store: OrderStore) -> None:
    first, second = _order(1), _order(2)
    await store.insert_order(first)
    await store.insert_order(second)
    second.finish(OrderStatus.CANCELLED, "by request", 5)
    await store.apply([OrderChange(second)])
    fill = first.record_fill(1, D(1), D("0.5"), 10)
    second.finish(OrderStatus.EXPIRED, "late", 6)
    with pytest.raises(StoreError):
        await store.apply([OrderChange(first, [fill]), OrderChange(second)])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.filled_qty == 0 and loaded.fills == []


async def test_a_final_order_never_changes(store: OrderStore) -> None:
    order = _order(1)
    await store.insert_order(order)
    order.finish(OrderStatus.CANCELLED, "by request", 5)
    await store.apply([OrderChange(order)])
    order.finish(OrderStatus.EXPIRED, "late", 6)
    with pytest.raises(StoreError):
        await store.apply([OrderChange(order)])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.status is OrderStatus.CANCELLED
    assert loaded.reason == "by request"


async def test_lists_page_newest_first_with_filters(store: OrderStore) -> None:
    for n in range(5):
        await store.insert_order(_order(n, symbol="ETHUSDT" if n % 2 else "BTCUSDT"))
    await store.insert_order(_order(9, owner="bob"))
    page = await store.list_orders("alice", status=None, symbol=None, limit=2, cursor=None)
    assert [o.order_id for o in page.orders] == ["order-4", "order-3"]
    assert page.next_cursor is not None
    page = await store.list_orders(
        "alice", status=None, symbol=None, limit=2, cursor=int(page.next_cursor)
    )
    assert [o.order_id for o in page.orders] == ["order-2", "order-1"]
    assert page.next_cursor is not None
    page = await store.list_orders(
        "alice", status=None, symbol=None, limit=2, cursor=int(page.next_cursor)
    )
    assert [o.order_id for o in page.orders] == ["order-0"] and page.next_cursor is None
    eth = await store.list_orders("alice", status=None, symbol="ETHUSDT", limit=50, cursor=None)
    assert [o.order_id for o in eth.orders] == ["order-3", "order-1"]
    order = _order(2, symbol="BTCUSDT")
    order.finish(OrderStatus.CANCELLED, "x", 3)
    await store.apply([OrderChange(order)])
    cancelled = await store.list_orders(
        "alice", status=OrderStatus.CANCELLED, symbol=None, limit=50, cursor=None
    )
    assert [o.order_id for o in cancelled.orders] == ["order-2"]
    huge = await store.list_orders("alice", status=None, symbol=None, limit=50, cursor=2**70)
    assert len(huge.orders) == 5


async def test_open_orders_oldest_first_per_symbol(store: OrderStore) -> None:
    for n in range(4):
        await store.insert_order(_order(n, symbol="ETHUSDT" if n == 2 else "BTCUSDT"))
    done = _order(1)
    done.finish(OrderStatus.EXPIRED, "late", 2)
    await store.apply([OrderChange(done)])
    assert [o.order_id for o in await store.open_orders()] == ["order-0", "order-2", "order-3"]
    assert [o.order_id for o in await store.open_orders("BTCUSDT")] == ["order-0", "order-3"]


async def test_open_counts_per_owner_count_only_open_orders(store: OrderStore) -> None:
    assert await store.open_counts() == {}  # type: ignore[attr-defined]
    orders = [_order(n, owner="bob" if n == 4 else "alice") for n in range(5)]
    for order in orders:
        await store.insert_order(order)
    done = orders[1]
    done.finish(OrderStatus.CANCELLED, "by request", 2)
    partly = orders[2]
    fill = partly.record_fill(1, D(10), D("0.25"), 3)
    await store.apply([OrderChange(done), OrderChange(partly, [fill])])
    counts = await store.open_counts()
    assert counts == {"alice": 3, "bob": 1}
    opened = await store.open_orders()
    assert counts == {o: sum(x.owner == o for x in opened) for o in ("alice", "bob")}


async def test_market_state_is_kept_with_the_fills(store: OrderStore) -> None:
    assert await store.market_state("BTCUSDT") is None
    order = _order(1)
    await store.insert_order(order)
    fill = order.record_fill(41, D(10), D("0.25"), 10)
    state = MarketState("BTCUSDT", 41, asks=((D(10), D("0.25")),), bids=())
    await store.apply([OrderChange(order, [fill])], state)
    assert await store.market_state("BTCUSDT") == state
    later = MarketState("BTCUSDT", 52, asks=(), bids=((D("9.5"), D(1)), (D(9), D(2))))
    await store.apply([], later)
    loaded = await store.market_state("BTCUSDT")
    assert loaded is not None and loaded.last_update_id == 52 and loaded.asks == ()
    assert sorted(loaded.bids) == sorted(later.bids)
    assert await store.market_state("ETHUSDT") is None


async def test_market_state_is_not_kept_when_its_change_is_refused(store: OrderStore) -> None:
    order = _order(1)
    await store.insert_order(order)
    order.finish(OrderStatus.CANCELLED, "x", 2)
    await store.apply([OrderChange(order)])
    with pytest.raises(StoreError):
        await store.apply([OrderChange(order)], MarketState("BTCUSDT", 9, asks=((D(1), D(1)),)))
    assert await store.market_state("BTCUSDT") is None


async def test_reads_are_never_torn_by_a_commit(store: OrderStore) -> None:
    order = _order(1)
    order.order_size = D(1000)
    await store.insert_order(order)

    async def write() -> None:
        for n in range(1, 201):
            await store.apply([OrderChange(order, [order.record_fill(n, D(1), D(1), n)])])

    writer = asyncio.create_task(write())
    while not writer.done():
        seen = await store.get("order-1")
        assert seen is not None
        assert sum((f.qty for f in seen.fills), D(0)) == seen.filled_qty
        assert len(seen.fills) == seen.fill_count
        await asyncio.sleep(0)  # an adapter that answers without awaiting must not starve it
    await writer


async def test_what_is_stored_survives_a_reopen(adapter: Adapter) -> None:
    if not adapter.durable:
        pytest.skip("this adapter keeps nothing across processes, by design")
    store = await adapter.open()
    order = _order(1)
    await store.insert_order(order)
    fill = order.record_fill(3, D(2), D("0.5"), 10)
    await store.apply(
        [OrderChange(order, [fill])], MarketState("BTCUSDT", 3, asks=((D(2), D("0.5")),))
    )
    change, deltas, position = await _filled(store)
    update = PositionUpdate("alice", "BTCUSDT", position.to_row())
    await store.apply([change], balances=deltas, positions=[update])
    account = await store.account("alice")
    await store.close()
    again = await adapter.open()
    try:
        assert await again.account("alice") == account
        assert account.positions and account.balances
        loaded = await again.get("order-1")
        assert loaded is not None and loaded.fills and loaded.filled_qty == D("0.5")
        assert await again.market_state("BTCUSDT") == MarketState(
            "BTCUSDT", 3, asks=((D(2), D("0.5")),)
        )
    finally:
        await again.close()


# -- the paper account's fields: market orders, time in force, fees --------------------


async def test_market_orders_time_in_force_and_fees_round_trip(store: OrderStore) -> None:
    market = _order(1)
    market.price, market.type, market.time_in_force = None, OrderType.MARKET, TimeInForce.IOC
    market.fee_asset = "BTC"
    fok = _order(2)
    fok.side, fok.time_in_force, fok.fee_asset = Side.SELL, TimeInForce.FOK, "USDT"
    await store.insert_order(market)
    await store.insert_order(fok)
    fee = D("0.000000000000000000000000000000000001")  # finer than any qty: kept exactly
    first = market.record_fill(5, D("61850.5"), D("0.25"), 10, D("0.00025"))
    second = market.record_fill(6, D("61851"), D("0.5"), 11, fee)
    market.finish(OrderStatus.EXPIRED, "expired: market order (IOC)", 12)
    await store.apply([OrderChange(market, [first, second])])
    loaded = await store.get("order-1")
    assert loaded is not None and loaded.price is None
    assert (loaded.type, loaded.time_in_force) == (OrderType.MARKET, TimeInForce.IOC)
    assert loaded.fees == D("0.000250000000000000000000000000000001")
    assert loaded.fee_asset == "BTC" and loaded.status is OrderStatus.EXPIRED
    assert [(f.fee, f.fee_asset) for f in loaded.fills] == [(D("0.00025"), "BTC"), (fee, "BTC")]
    listed = await store.list_orders("alice", status=None, symbol=None, limit=5, cursor=None)
    assert [(o.order_id, o.type, o.time_in_force, o.price) for o in listed.orders] == [
        ("order-2", OrderType.LIMIT, TimeInForce.FOK, fok.price),
        ("order-1", OrderType.MARKET, TimeInForce.IOC, None),
    ]
    (still_open,) = await store.open_orders("BTCUSDT")
    assert still_open.time_in_force is TimeInForce.FOK and still_open.fee_asset == "USDT"


def _sqlite_at_version_2(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(SQLITE_MIGRATIONS[:2], start=1):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    db.executescript(_V2_ROWS)
    db.close()


async def _postgres_at_version_2(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_version (single BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),"
            " version INTEGER NOT NULL); INSERT INTO schema_version (version) VALUES (2);"
        )
        for script in POSTGRES_MIGRATIONS[:2]:
            await conn.execute(script)
        await conn.execute(_V2_ROWS)
    finally:
        await conn.close()


_V2_COLUMNS = (
    "order_id, owner, client_order_id, symbol, side, order_size, price, timeout_s, status, "
    "filled_qty, notional, fill_count, reason, created_at_us, updated_at_us, expires_at_us"
)
_V2_ROWS = f"""
    INSERT INTO orders ({_V2_COLUMNS}) VALUES
        ('old-buy', 'alice', 'k1', 'ETHBTC', 'buy', '2', '0.05', 30, 'partially_filled', '1',
         '0.05', 1, NULL, 1, 2, 30000001),
        ('old-sell', 'alice', NULL, 'BTCFDUSD', 'sell', '1', '60000', 30, 'open', '0', '0', 0,
         NULL, 3, 3, 30000003);
    INSERT INTO fills (order_id, seq, update_id, price, qty, ts_us) VALUES
        ('old-buy', 1, 9, '0.05', '1', 2);
"""


async def test_an_existing_sqlite_database_is_upgraded_in_place(tmp_path: Path) -> None:
    _sqlite_at_version_2(tmp_path / "old.db")
    await _check_the_upgrade(await SqliteStore.open(tmp_path / "old.db"))


async def test_an_existing_postgresql_database_is_upgraded_in_place(
    postgres_store_url: str,  # noqa: F811
) -> None:
    await _postgres_at_version_2(postgres_store_url)
    await _check_the_upgrade(await PostgresStore.open(postgres_store_url))


async def _check_the_upgrade(store: Any) -> None:
    """Orders stored before the paper account are limit GTT orders with no fee, their
    fee asset set by side, and keep their fills and their place in the list."""
    try:
        old_buy = await store.get("old-buy")
        assert old_buy is not None and old_buy.price == D("0.05")
        assert (old_buy.type, old_buy.time_in_force) == (OrderType.LIMIT, TimeInForce.GTT)
        assert old_buy.fees == 0 and old_buy.fee_asset == "ETH"
        assert [(f.seq, f.qty, f.fee, f.fee_asset) for f in old_buy.fills] == [
            (1, D(1), D(0), "ETH")
        ]
        assert old_buy.client_order_id == "k1"
        assert (await store.get_by_client_order_id("alice", "k1")) is not None
        old_sell = await store.get("old-sell")
        assert old_sell is not None and old_sell.fee_asset == "FDUSD"
        # Open orders lock what they need from the upgrade on: 1 × 0.05 BTC left to buy
        # ETH with, and 1 BTC to sell.
        account = await store.account("alice")
        assert account.balances == {"BTC": AssetBalance(D("-1.05"), D("1.05"))}
        assert account.positions == {}
        # The list keeps its order, and new orders come after the old ones.
        await store.insert_order(_order(7))
        listed = await store.list_orders("alice", status=None, symbol=None, limit=5, cursor=None)
        assert [o.order_id for o in listed.orders] == ["order-7", "old-sell", "old-buy"]
        # The old ones carry on as before: a fill with its fee.
        fill = old_sell.record_fill(10, D("60000"), D("1"), 5, D("60"))
        await store.apply([OrderChange(old_sell, [fill])])
        again = await store.get("old-sell")
        assert again is not None and again.fees == D(60) and again.fills[0].fee == D(60)
    finally:
        await store.close()


# -- the paper account: balances and positions -------------------------------------------

USDT_10000 = {"USDT": D(10000)}


def _buy(n: int, size: str, price: str, *, owner: str = "alice") -> Order:
    order = _order(n, owner=owner)
    order.order_size, order.price, order.fee_asset = D(size), D(price), "BTC"
    return order


def _accepting(order: Order, opening: dict[str, Decimal] | None = USDT_10000) -> OpeningBalances:
    return OpeningBalances(deltas_on_accept(order, assets_of(order.symbol)), opening)


async def test_an_owner_is_given_the_opening_balances_once_with_its_first_order(
    store: OrderStore,
) -> None:
    first = _buy(1, "0.2", "30000")
    await store.insert_order(first, balances=_accepting(first, {"USDT": D(10000), "BTC": D(1)}))
    account = await store.account("alice")
    assert account.balances == {
        "BTC": AssetBalance(D(1), D(0)), "USDT": AssetBalance(D(4000), D(6000)),
    }  # fmt: skip
    second = _buy(2, "0.1", "30000")
    await store.insert_order(second, balances=_accepting(second))  # seen: no second seed
    assert (await store.account("alice")).balances["USDT"] == AssetBalance(D(1000), D(9000))
    assert (await store.account("bob")).balances == {}


async def test_an_order_whose_lock_is_not_free_is_refused_and_nothing_is_stored(
    store: OrderStore,
) -> None:
    await store.insert_order(_buy(0, "0.1", "30000"), balances=_accepting(_buy(0, "0.1", "30000")))
    orders = [_buy(1, "0.1", "30000"), _buy(2, "0.3", "30000"), _buy(3, "0.1", "30000")]
    results = await asyncio.gather(
        *(store.insert_order(o, balances=_accepting(o)) for o in orders), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    refused = results[1]
    assert isinstance(refused, InsufficientBalance)
    assert (refused.asset, refused.needed) == ("USDT", D(9000))
    assert refused.free in (D(7000), D(4000), D(1000))  # the writes may land in any order
    assert await store.get("order-2") is None  # refused whole: not stored
    assert await store.get("order-1") is not None and await store.get("order-3") is not None
    account = await store.account("alice")
    assert account.balances == {"USDT": AssetBalance(D(1000), D(9000))}


async def test_concurrent_orders_never_lock_more_than_is_free(store: OrderStore) -> None:
    orders = [_buy(n, "0.1", "30000") for n in range(10)]  # 3000 USDT each, 10000 free
    results = await asyncio.gather(
        *(store.insert_order(o, balances=_accepting(o)) for o in orders), return_exceptions=True
    )
    assert sum(result is None for result in results) == 3
    assert all(r is None or isinstance(r, InsufficientBalance) for r in results)
    account = await store.account("alice")
    assert account.balances == {"USDT": AssetBalance(D(1000), D(9000))}


async def test_without_opening_balances_nothing_is_refused_and_free_goes_negative(
    store: OrderStore,
) -> None:
    order = _buy(1, "2", "30000")
    await store.insert_order(order, balances=_accepting(order, None))
    assert (await store.account("alice")).balances == {"USDT": AssetBalance(D(-60000), D(60000))}


async def _filled(store: OrderStore) -> tuple[OrderChange, list[OwnerDelta], Position]:
    """The worked example's buy (README): 0.2 @ 30000 filled 0.1 @ 29500 and 0.1 @ 30000."""
    order = _buy(100, "0.2", "30000")
    await store.insert_order(order, balances=_accepting(order))
    fills = [
        order.record_fill(1, D(29500), D("0.1"), 10, D("0.0001")),
        order.record_fill(2, D(30000), D("0.1"), 11, D("0.0001")),
    ]
    deltas = change_deltas(order, order.symbol, fills, order.status.is_final)
    position = Position(order.symbol)
    for fill in fills:
        position.apply_fill(order.side, fill.price, fill.qty, fill.fee)
    owner_deltas = [OwnerDelta("alice", d.asset, d.free, d.locked) for d in deltas]
    return OrderChange(order, fills), owner_deltas, position


async def test_balances_and_positions_commit_with_the_fills(store: OrderStore) -> None:
    change, deltas, position = await _filled(store)
    update = PositionUpdate("alice", "BTCUSDT", position.to_row())
    await store.apply([change], balances=deltas, positions=[update])
    account = await store.account("alice")
    assert account.balances == {
        "BTC": AssetBalance(D("0.1998"), D(0)), "USDT": AssetBalance(D(4050), D(0)),
    }  # fmt: skip
    assert account.positions == {"BTCUSDT": position.to_row()}
    assert await store.position("alice", "BTCUSDT") == position.to_row()
    assert await store.position("alice", "ETHUSDT") is None
    stored = Position.from_row("BTCUSDT", account.positions["BTCUSDT"])
    assert (stored.qty, stored.avg_entry, stored.fees) == (D("0.2"), 29750, D("5.95"))
    assert stored == position


async def test_a_refused_change_moves_no_balance_and_no_position(store: OrderStore) -> None:
    change, deltas, position = await _filled(store)
    update = PositionUpdate("alice", "BTCUSDT", position.to_row())
    await store.apply([change], balances=deltas, positions=[update])
    before = await store.account("alice")
    again = Position.from_row("BTCUSDT", position.to_row())
    again.apply_fill(Side.SELL, D(31000), D("0.1"), D("3.1"))
    with pytest.raises(StoreError):  # the order is final: the whole write is refused
        await store.apply(
            [change], balances=[OwnerDelta("alice", "USDT", D("3096.9"))],
            positions=[PositionUpdate("alice", "BTCUSDT", again.to_row())],
        )  # fmt: skip
    assert await store.account("alice") == before


async def test_balances_of_many_owners_move_together_in_one_write(store: OrderStore) -> None:
    orders = [_buy(n, "0.1", "30000", owner=owner) for n, owner in enumerate("zyx")]
    for order in orders:
        await store.insert_order(order, balances=_accepting(order))
    ended = []
    for order in orders:
        order.finish(OrderStatus.CANCELLED, "by request", 20)
        ended.append(OrderChange(order))
    deltas = [
        OwnerDelta(order.owner, d.asset, d.free, d.locked)
        for order in orders
        for d in change_deltas(order, order.symbol, [], ended=True)
    ]
    await store.apply(ended, balances=deltas)
    for owner in "xyz":
        assert (await store.account(owner)).balances == {"USDT": AssetBalance(D(10000), D(0))}


async def test_concurrent_writers_of_one_balance_lose_no_update(store: OrderStore) -> None:
    """Fills of different symbols move one owner's USDT at once (beside other executors,
    from several processes): every delta lands."""
    first = _buy(1, "0.1", "30000")
    await store.insert_order(first, balances=_accepting(first))
    writes = []
    for n in range(2, 12):
        other = _buy(n, "0.1", "1", owner="alice")
        other.symbol = f"X{n}USDT"
        await store.insert_order(other)
        fill = other.record_fill(1, D(1), D("0.1"), 10)
        writes.append(store.apply(
            [OrderChange(other, [fill])],
            balances=[OwnerDelta("alice", "USDT", D("-0.1")),
                      OwnerDelta("alice", f"X{n}", D("0.1"))],
        ))  # fmt: skip
    await asyncio.gather(*writes)
    usdt = (await store.account("alice")).balances["USDT"]
    assert usdt == AssetBalance(D(7000) - D("1.0"), D(3000))
