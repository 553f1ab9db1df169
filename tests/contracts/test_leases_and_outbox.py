"""What only a store shared by processes does: partition leases, fenced writes, the outbox,
and migrations run by several processes at once. PostgreSQL only (skipped without it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest

from app.adapters.migrations import POSTGRES_MIGRATIONS, migrate_postgres
from app.adapters.postgres_store import PostgresStore
from app.core.domain import MarketState, OrderStatus, Side
from app.core.events import EventKind, OrderEvent, order_event
from app.core.order import Order
from app.ports import (
    DuplicateClientOrderId,
    Fence,
    OrderChange,
    StoreFenced,
    StoreUnavailable,
)
from tests.engine_postgres import postgres_store_url, postgres_url  # noqa: F401

D = Decimal
TTL = 0.3  # seconds: leases here expire fast, so no test sleeps long


@pytest.fixture
async def store(postgres_store_url: str) -> AsyncIterator[PostgresStore]:  # noqa: F811
    opened = await PostgresStore.open(postgres_store_url)
    yield opened
    await opened.close()


@pytest.fixture
async def other(postgres_store_url: str) -> AsyncIterator[PostgresStore]:  # noqa: F811
    """A second store on the same database: another process, in effect."""
    opened = await PostgresStore.open(postgres_store_url)
    yield opened
    await opened.close()


def _order(n: int, *, symbol: str = "BTCUSDT", client_order_id: str | None = None) -> Order:
    return Order(
        order_id=f"order-{n}", owner="alice", client_order_id=client_order_id, symbol=symbol,
        side=Side.BUY, order_size=D("10"), price=D("100.5"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n, expires_at_us=n + 30_000_000,
    )  # fmt: skip


async def _outbox_ids(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [row["id"] for row in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
    finally:
        await conn.close()


async def _expire(store: PostgresStore, partition: int) -> None:
    """Wait (briefly) until the partition's lease has run out."""
    deadline = time.monotonic() + 5
    while partition in await store.holders():
        assert time.monotonic() < deadline, "the lease never expired"
        await asyncio.sleep(0.05)


# -- leases ------------------------------------------------------------------------------


async def test_a_lease_is_held_by_one_owner_until_it_expires(store: PostgresStore) -> None:
    assert await store.holders() == {}
    assert await store.acquire(0, "a", TTL) == 1
    assert await store.acquire(0, "b", TTL) is None  # held by a
    assert await store.acquire(0, "a", TTL) == 1  # extending a live lease keeps its epoch
    holders = await store.holders()
    assert set(holders) == {0} and holders[0][0] == "a" and 0 < holders[0][1] <= TTL
    assert await store.renew("a", 10) == {0: 1}
    assert await store.renew("b", 10) == {}
    assert 5 < (await store.holders())[0][1] <= 10

    assert await store.acquire(1, "a", TTL) == 1
    await _expire(store, 1)
    assert await store.renew("a", 10) == {0: 1}  # only live leases are renewed
    assert await store.acquire(1, "b", TTL) == 2  # taken over: a new epoch
    assert (await store.holders())[1][0] == "b"


async def test_the_same_owner_after_expiry_gets_a_new_epoch(store: PostgresStore) -> None:
    assert await store.acquire(3, "a", TTL) == 1
    await _expire(store, 3)
    assert await store.acquire(3, "a", TTL) == 2


async def test_release_hands_a_partition_over_at_once(store: PostgresStore) -> None:
    assert await store.acquire(0, "a", 60) == 1
    assert await store.acquire(1, "a", 60) == 1
    await store.release("b", [0, 1])  # not b's: nothing happens
    assert set(await store.holders()) == {0, 1}
    await store.release("a", [0])
    assert set(await store.holders()) == {1}
    epoch = await store.acquire(0, "b", 60)
    assert epoch is not None and epoch > 1
    assert await store.renew("a", 60) == {1: 1}


# -- fencing -----------------------------------------------------------------------------


async def test_a_fenced_write_after_a_takeover_stores_nothing(
    store: PostgresStore,
    other: PostgresStore,
    postgres_store_url: str,  # noqa: F811
) -> None:
    order = _order(1)
    await store.insert_order(order)
    epoch_a = await store.acquire(7, "a", TTL)
    assert epoch_a is not None
    fill = order.record_fill(11, D("100"), D("1"), 20)
    kept = MarketState("BTCUSDT", 11, asks=((D("100"), D("1")),))
    await store.apply(
        [OrderChange(order, [fill])], kept, [order_event(EventKind.FILL, order, fill)],
        fence=Fence(7, "a", epoch_a),
    )  # fmt: skip
    outbox_before = await _outbox_ids(postgres_store_url)
    assert len(outbox_before) == 1

    await _expire(store, 7)  # a pauses past its lease; b takes the partition over
    epoch_b = await other.acquire(7, "b", 60)
    assert epoch_b is not None and epoch_b > epoch_a

    stale = order.record_fill(12, D("100"), D("2"), 30)
    with pytest.raises(StoreFenced):
        await store.apply(
            [OrderChange(order, [stale])],
            MarketState("BTCUSDT", 12, asks=((D("100"), D("3")),)),
            [order_event(EventKind.FILL, order, stale)],
            fence=Fence(7, "a", epoch_a),
        )
    loaded = await other.get("order-1")
    assert loaded is not None and loaded.filled_qty == D("1") and len(loaded.fills) == 1
    assert await other.market_state("BTCUSDT") == kept
    assert await _outbox_ids(postgres_store_url) == outbox_before

    # The current owner writes under its own fence; a stale epoch of the same owner cannot.
    current = await other.get("order-1", with_fills=False)
    assert current is not None
    fill = current.record_fill(12, D("100"), D("2"), 30)
    await other.apply([OrderChange(current, [fill])], fence=Fence(7, "b", epoch_b))
    with pytest.raises(StoreFenced):
        await other.apply([], kept, fence=Fence(7, "b", epoch_b - 1))
    loaded = await other.get("order-1")
    assert loaded is not None and loaded.filled_qty == D("3") and len(loaded.fills) == 2


async def test_a_fence_on_a_partition_never_leased_is_refused(store: PostgresStore) -> None:
    with pytest.raises(StoreFenced):
        await store.apply([], MarketState("BTCUSDT", 1), fence=Fence(99, "a", 1))
    assert await store.market_state("BTCUSDT") is None
    await store.apply([], MarketState("BTCUSDT", 1))  # unfenced: single-process use


async def test_a_takeover_waits_for_a_fenced_write_in_flight(
    store: PostgresStore,
    postgres_store_url: str,  # noqa: F811
) -> None:
    epoch = await store.acquire(5, "a", 0.2)
    assert epoch == 1
    await _expire(store, 5)
    # What a fenced apply does first, held open: the lease row locked FOR SHARE.
    writer = await asyncpg.connect(postgres_store_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        row = await writer.fetchrow(
            "SELECT owner, epoch FROM partition_leases WHERE partition = 5 FOR SHARE"
        )
        assert (row["owner"], row["epoch"]) == ("a", 1)
        takeover = asyncio.create_task(store.acquire(5, "b", 60))
        await asyncio.sleep(0.3)
        assert not takeover.done()  # b cannot take it while a's write may still commit
        await transaction.commit()
        assert await asyncio.wait_for(takeover, 5) == 2
    finally:
        await writer.close()


# -- the outbox --------------------------------------------------------------------------


async def _write_events(store: PostgresStore, orders: int) -> list[OrderEvent]:
    """Accept `orders` orders and fill each once: their events, in commit order."""
    events: list[OrderEvent] = []
    for n in range(orders):
        order = _order(n)
        accepted = [order_event(EventKind.ACCEPTED, order)]
        await store.insert_order(order, accepted)
        fill = order.record_fill(n + 1, D("100"), D("1"), n + 10)
        filled = [order_event(EventKind.FILL, order, fill)]
        await store.apply([OrderChange(order, [fill])], events=filled)
        events += accepted + filled
    return events


async def test_relay_publishes_in_order_and_forgets(store: PostgresStore) -> None:
    written = await _write_events(store, 5)
    published: list[list[OrderEvent]] = []

    async def publish(events: list[OrderEvent]) -> None:
        published.append(events)

    assert await store.relay(publish, limit=4) == 4
    assert await store.relay(publish, limit=500) == 6
    assert await store.relay(publish) == 0
    assert [len(batch) for batch in published] == [4, 6]
    assert [event for batch in published for event in batch] == written


async def test_a_failed_publish_keeps_the_events(store: PostgresStore) -> None:
    written = await _write_events(store, 2)

    async def fail(events: list[OrderEvent]) -> None:
        raise ConnectionError("bus down")

    with pytest.raises(ConnectionError):
        await store.relay(fail)
    published: list[OrderEvent] = []

    async def publish(events: list[OrderEvent]) -> None:
        published.extend(events)

    assert await store.relay(publish) == len(written)
    assert published == written


async def test_a_refused_write_leaves_no_events(store: PostgresStore) -> None:
    order = _order(1, client_order_id="k")
    await store.insert_order(order, [order_event(EventKind.ACCEPTED, order)])
    again = _order(2, client_order_id="k")
    with pytest.raises(DuplicateClientOrderId):
        await store.insert_order(again, [order_event(EventKind.ACCEPTED, again)])
    published: list[OrderEvent] = []

    async def publish(events: list[OrderEvent]) -> None:
        published.extend(events)

    assert await store.relay(publish) == 1
    assert [event.order_id for event in published] == ["order-1"]


async def test_concurrent_relayers_publish_each_event_once_in_order(
    store: PostgresStore, other: PostgresStore
) -> None:
    written = await _write_events(store, 40)
    published: list[OrderEvent] = []
    relayed = {"store": 0, "other": 0}

    async def publish(events: list[OrderEvent]) -> None:
        await asyncio.sleep(0.005)  # let the other relayer try while this one holds the lock
        published.extend(events)

    async def relayer(name: str, relaying: PostgresStore) -> None:
        while sum(relayed.values()) < len(written):
            count = await relaying.relay(publish, limit=7)
            relayed[name] += count
            if count == 0:
                await asyncio.sleep(0.001)

    await asyncio.wait_for(
        asyncio.gather(relayer("store", store), relayer("other", other)), timeout=30
    )
    assert published == written
    assert sum(relayed.values()) == len(written)


async def test_wait_wakes_on_a_commit_with_events(
    store: PostgresStore, other: PostgresStore
) -> None:
    started = time.monotonic()
    await store.wait(5)  # the first call starts listening and returns at once
    assert time.monotonic() - started < 2

    waiting = asyncio.create_task(store.wait(10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await other.insert_order(_order(1))  # no events: no wake-up
    await asyncio.sleep(0.2)
    assert not waiting.done()
    order = _order(2)
    await other.insert_order(order, [order_event(EventKind.ACCEPTED, order)])
    await asyncio.wait_for(waiting, 5)

    started = time.monotonic()
    await store.wait(0.2)  # nothing new: returns after its timeout
    assert time.monotonic() - started >= 0.15


# -- connections -------------------------------------------------------------------------


async def test_no_server_is_unavailable_not_a_crash() -> None:
    with pytest.raises(StoreUnavailable):
        await PostgresStore.open("postgresql://postgres@127.0.0.1:1/postgres")


async def test_a_lost_connection_is_unavailable_and_the_next_call_reconnects(
    store: PostgresStore,
    postgres_store_url: str,  # noqa: F811
) -> None:
    await asyncio.gather(*(store.ping() for _ in range(4)))  # several pooled connections
    admin = await asyncpg.connect(postgres_store_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    order = _order(1)
    try:
        await store.insert_order(order)
    except StoreUnavailable:  # the caller retries, once: every dead connection is replaced
        await store.insert_order(order)
    assert await store.get("order-1") is not None


# -- migrations --------------------------------------------------------------------------


async def test_migrations_run_concurrently_from_several_processes(
    postgres_store_url: str,  # noqa: F811
) -> None:
    connections = [await asyncpg.connect(postgres_store_url) for _ in range(6)]
    try:
        versions = await asyncio.gather(*(migrate_postgres(conn) for conn in connections))
        assert versions == [len(POSTGRES_MIGRATIONS)] * 6
        stored = await connections[0].fetchval("SELECT version FROM schema_version")
        assert stored == len(POSTGRES_MIGRATIONS)
        assert await connections[0].fetchval("SELECT count(*) FROM schema_version") == 1
    finally:
        for conn in connections:
            await conn.close()
    stores = await asyncio.gather(*(PostgresStore.open(postgres_store_url) for _ in range(4)))
    for opened in stores:
        await opened.ping()
        await opened.close()


async def test_a_newer_schema_is_left_alone(postgres_store_url: str) -> None:  # noqa: F811
    conn = await asyncpg.connect(postgres_store_url)
    try:
        await migrate_postgres(conn)
        await conn.execute("UPDATE schema_version SET version = version + 1")
        with pytest.raises(RuntimeError, match="newer than this service"):
            await migrate_postgres(conn)
    finally:
        await conn.close()
