"""What only the Redis bus and command queue do, against a real redis-server.

The ports' shared behaviour is in tests/contracts; here: fan-out to separate processes'
buses, dropping a republished event, trimming, resuming after a dropped connection, and
for commands the routing by symbol, owning partitions, and taking over what a dead
executor read but never acknowledged, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.adapters.codec import encode_command
from app.adapters.redis_bus import RedisEventBus
from app.adapters.redis_commands import RedisCommandQueue
from app.core.commands import AddOrder, CancelOrder, OrderCommand
from app.core.domain import OrderStatus, Side
from app.core.events import EventKind, OrderEvent, order_event
from app.core.order import Order
from app.core.partitions import partition_of
from app.ports import Subscription
from tests.contracts.test_command_queue_port import Consumer

# The Redis fixtures (redis_url, redis_db_url), until the root conftest registers them.

D = Decimal
TIMEOUT = 5.0
PARTITIONS = 16


def _order(n: int, *, symbol: str = "BTCUSDT") -> Order:
    return Order(
        order_id=f"order-{n}", owner="alice", client_order_id=None, symbol=symbol,
        side=Side.BUY, order_size=D("2"), price=D("1"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n, expires_at_us=n + 30_000_000,
    )  # fmt: skip


def _accepted(n: int) -> OrderEvent:
    return order_event(EventKind.ACCEPTED, _order(n))


def _fill(order: Order, seq_price: str) -> OrderEvent:
    fill = order.record_fill(100 + order.fill_count, D(seq_price), D("1"), order.fill_count + 1)
    return order_event(EventKind.FILL, order, fill)


def _keys(events: list[OrderEvent]) -> list[tuple[str, str, int]]:
    return [(e.order_id, e.kind.value, e.fill_seq) for e in events]


async def _take(subscription: Subscription, count: int) -> list[OrderEvent]:
    reader = aiter(subscription)
    async with asyncio.timeout(TIMEOUT):
        return [await anext(reader) for _ in range(count)]


async def _nothing_more(subscription: Subscription, within: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(within):
            await anext(aiter(subscription))


@pytest.fixture
async def buses(redis_db_url: str) -> AsyncIterator[Callable[..., RedisEventBus]]:
    """Buses on one stream, as separate processes would hold them."""
    made: list[RedisEventBus] = []

    def make(**options: Any) -> RedisEventBus:
        bus = RedisEventBus(redis_db_url, **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


# -- the bus ---------------------------------------------------------------------------------


async def test_every_process_gets_every_event(buses: Callable[..., RedisEventBus]) -> None:
    api_1, api_2, executor = buses(), buses(), buses()
    for bus in (api_1, api_2, executor):
        await bus.start()
    first, second = api_1.subscribe(), api_2.subscribe()
    also_first = api_1.subscribe()
    sent = [_accepted(n) for n in range(5)]
    await executor.publish(sent[:3])
    await api_2.publish(sent[3:])
    for subscription in (first, second, also_first):
        assert _keys(await _take(subscription, 5)) == _keys(sent)
    for subscription in (first, second, also_first):
        subscription.close()


async def test_a_republished_event_is_delivered_once(buses: Callable[..., RedisEventBus]) -> None:
    """The outbox relays at least once: a relayer that dies after publishing and before
    forgetting its events makes the next relayer publish them again."""
    api, relayer, next_relayer = buses(), buses(), buses()
    await api.start()
    subscription = api.subscribe()
    order = _order(1)
    accepted = order_event(EventKind.ACCEPTED, order)
    fill_1 = _fill(order, "1.5")
    fill_2 = _fill(order, "1.25")
    order.finish(OrderStatus.FILLED, None, 9)
    filled = order_event(EventKind.FILLED, order)
    await relayer.publish([accepted, fill_1])
    await next_relayer.publish([accepted, fill_1, fill_2])  # the first two again
    await next_relayer.publish([fill_2, filled])
    got = await _take(subscription, 4)
    assert _keys(got) == [
        ("order-1", "accepted", 0), ("order-1", "fill", 1),
        ("order-1", "fill", 2), ("order-1", "filled", 0),
    ]  # fmt: skip
    await _nothing_more(subscription)
    assert api.duplicates_dropped == 3


async def test_the_memory_of_delivered_events_is_bounded(
    buses: Callable[..., RedisEventBus],
) -> None:
    bus = buses(dedup_keys=3)
    subscription = bus.subscribe()
    await bus.publish([_accepted(n) for n in range(5)])
    await bus.publish([_accepted(4), _accepted(0)])  # 4 is remembered, 0 forgotten
    got = await _take(subscription, 6)
    assert [e.order_id for e in got] == [f"order-{n}" for n in (0, 1, 2, 3, 4, 0)]
    await _nothing_more(subscription)


async def test_a_subscription_made_before_the_bus_started_misses_nothing_of_its_process(
    buses: Callable[..., RedisEventBus],
) -> None:
    bus = buses()
    subscription = bus.subscribe()  # the reader is only starting
    await bus.publish([_accepted(1)])  # waits for the reader's starting point
    assert _keys(await _take(subscription, 1)) == [("order-1", "accepted", 0)]


async def test_the_stream_is_trimmed_to_about_maxlen(
    buses: Callable[..., RedisEventBus], redis_db_url: str
) -> None:
    bus = buses(stream="te:events:trimmed", maxlen=100)
    for n in range(0, 1000, 50):
        await bus.publish([_accepted(m) for m in range(n, n + 50)])
    client = aioredis.Redis.from_url(redis_db_url)
    try:
        length = await client.xlen("te:events:trimmed")
    finally:
        await client.aclose()
    assert 100 <= length < 400  # approximate: whole nodes are dropped


async def test_the_reader_resumes_after_its_connection_is_dropped(
    buses: Callable[..., RedisEventBus], redis_db_url: str
) -> None:
    bus, publisher = buses(block_ms=200), buses()
    await bus.start()
    subscription = bus.subscribe()
    await publisher.publish([_accepted(1)])
    assert _keys(await _take(subscription, 1)) == [("order-1", "accepted", 0)]
    admin = aioredis.Redis.from_url(redis_db_url)
    try:
        await asyncio.sleep(0.05)  # the reader is back in XREAD
        readers = [c for c in await admin.client_list() if c.get("cmd") == "xread"]
        assert readers
        for client in readers:
            await admin.client_kill_filter(_id=client["id"])
        await publisher.publish([_accepted(2), _accepted(3)])
    finally:
        await admin.aclose()
    got = await _take(subscription, 2)
    assert [e.order_id for e in got] == ["order-2", "order-3"]


async def test_closing_the_bus_ends_its_subscriptions(buses: Callable[..., RedisEventBus]) -> None:
    bus = buses()
    subscription = bus.subscribe()
    await bus.close()
    async with asyncio.timeout(TIMEOUT):
        assert [event async for event in subscription] == []


# -- the command queue -------------------------------------------------------------------------


class Executor(Consumer):
    """The contract suite's recording handler, waited on by the commands' order ids."""

    async def wait_ids(self, count: int) -> list[str]:
        await self.wait(count)
        return self.ids()

    def ids(self) -> list[str]:
        return [_command_id(command) for command in self.received]


def _command_id(command: OrderCommand) -> str:
    return command.order.order_id if isinstance(command, AddOrder) else command.order_id


@pytest.fixture
async def queues(redis_db_url: str) -> AsyncIterator[Callable[..., RedisCommandQueue]]:
    made: list[RedisCommandQueue] = []

    def make(consumer: str, **options: Any) -> RedisCommandQueue:
        queue = RedisCommandQueue(redis_db_url, partitions=PARTITIONS, consumer=consumer, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.close()


@pytest.fixture
async def admin(redis_db_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_db_url)
    yield client
    await client.aclose()


BTC = partition_of("BTCUSDT", PARTITIONS)
ETH = partition_of("ETHBTC", PARTITIONS)


def test_the_symbols_used_here_are_in_different_partitions() -> None:
    assert BTC != ETH


async def test_a_command_goes_to_its_symbols_partition_stream(
    queues: Callable[..., RedisCommandQueue], admin: aioredis.Redis
) -> None:
    intake = queues("api")
    symbols = ["BTCUSDT", "ETHBTC", "LTCBTC", "BNBUSDT", "SOLUSDT"]
    for n, symbol in enumerate(symbols):
        await intake.send(AddOrder(_order(n, symbol=symbol)))
        await intake.send(CancelOrder(f"order-{n}", symbol))
    for n, symbol in enumerate(symbols):
        entries = await admin.xrange(f"te:cmd:{partition_of(symbol, PARTITIONS)}")
        mine = [e for e in entries if f"order-{n}".encode() in e[1][b"c"]]
        assert [e[1][b"c"] for e in mine] == [
            encode_command(AddOrder(_order(n, symbol=symbol))),
            encode_command(CancelOrder(f"order-{n}", symbol)),
        ]


async def test_an_executor_reads_only_the_partitions_it_owns(
    queues: Callable[..., RedisCommandQueue], admin: aioredis.Redis
) -> None:
    intake, queue, executor = queues("api"), queues("executor-1"), Executor()
    queue.consume(executor.handle)
    await queue.own({BTC})
    await intake.send(AddOrder(_order(1, symbol="ETHBTC")))
    await intake.send(AddOrder(_order(2, symbol="BTCUSDT")))
    assert await executor.wait_ids(1) == ["order-2"]
    await asyncio.sleep(0.3)
    assert executor.ids() == ["order-2"]
    assert await admin.xlen(f"te:cmd:{ETH}") == 1  # waiting for ETH's owner
    assert await admin.xlen(f"te:cmd:{BTC}") == 0  # handled, acknowledged and deleted
    await queue.own({BTC, ETH})
    assert await executor.wait_ids(2) == ["order-2", "order-1"]
    with pytest.raises(ValueError):
        await queue.own({PARTITIONS})


async def test_a_takeover_handles_what_a_dead_executor_read_then_the_rest_in_order(
    queues: Callable[..., RedisCommandQueue], admin: aioredis.Redis
) -> None:
    intake = queues("api")
    stream = f"te:cmd:{BTC}"
    for n in range(1, 4):
        await intake.send(AddOrder(_order(n)))
    # Executor A reads three commands and dies (kill -9) before acknowledging them.
    await admin.xgroup_create(stream, "executors", id="0", mkstream=True)
    read = await admin.xreadgroup("executors", "executor-a", {stream: ">"}, count=3)
    assert len(read[0][1]) == 3
    for n in range(4, 6):
        await intake.send(AddOrder(_order(n)))
    await intake.send(CancelOrder("order-1", "BTCUSDT"))
    # Executor B takes the partition over.
    queue_b, executor_b = queues("executor-b"), Executor()
    queue_b.consume(executor_b.handle)
    await queue_b.own({BTC})
    assert await executor_b.wait_ids(6) == [f"order-{n}" for n in range(1, 6)] + ["order-1"]
    assert isinstance(executor_b.received[-1], CancelOrder)
    await intake.send(AddOrder(_order(6)))
    assert (await executor_b.wait_ids(7))[-1] == "order-6"
    assert (await admin.xpending(stream, "executors"))["pending"] == 0
    assert await admin.xlen(stream) == 0


async def test_a_handover_loses_and_repeats_nothing(
    queues: Callable[..., RedisCommandQueue], admin: aioredis.Redis
) -> None:
    intake = queues("api")
    queue_a, executor_a = queues("executor-a"), Executor()
    queue_b, executor_b = queues("executor-b"), Executor()
    queue_a.consume(executor_a.handle)
    queue_b.consume(executor_b.handle)
    await queue_a.own(range(PARTITIONS))
    for n in range(3):
        await intake.send(AddOrder(_order(n)))
    assert await executor_a.wait_ids(3) == ["order-0", "order-1", "order-2"]
    await queue_a.own(set(range(PARTITIONS)) - {BTC})  # SIGTERM or rebalancing: BTC goes
    for n in range(3, 20):
        await intake.send(AddOrder(_order(n)))
    await asyncio.sleep(0.2)
    assert executor_b.received == []  # nobody reads BTC for a while: nothing is lost
    await queue_b.own({BTC})
    assert await executor_b.wait_ids(17) == [f"order-{n}" for n in range(3, 20)]
    await asyncio.sleep(0.2)
    assert len(executor_a.received) == 3 and len(executor_b.received) == 17


async def test_entries_an_old_owner_read_after_the_takeover_are_reclaimed(
    queues: Callable[..., RedisCommandQueue], admin: aioredis.Redis
) -> None:
    """An executor that lost its lease without knowing (a long pause) may read once more
    after the new owner claimed the partition: those entries are claimed later."""
    intake = queues("api")
    queue_b = queues("executor-b", reclaim_interval_s=0.1, reclaim_idle_ms=200, block_ms=100)
    executor_b = Executor()
    queue_b.consume(executor_b.handle)
    await queue_b.own({BTC})
    await intake.send(AddOrder(_order(1)))
    assert await executor_b.wait_ids(1) == ["order-1"]
    stream = f"te:cmd:{BTC}"
    pipe = admin.pipeline(transaction=True)  # the old owner's read wins the race
    pipe.xadd(stream, {b"c": encode_command(AddOrder(_order(2)))})
    pipe.xreadgroup("executors", "executor-a", {stream: ">"}, count=10)
    await pipe.execute()
    await intake.send(AddOrder(_order(3)))
    assert await executor_b.wait_ids(3) == ["order-1", "order-3", "order-2"]
    assert (await admin.xpending(stream, "executors"))["pending"] == 0


async def test_a_bad_command_or_a_failing_handler_does_not_block_the_partition(
    queues: Callable[..., RedisCommandQueue], admin: aioredis.Redis
) -> None:
    intake, queue = queues("api"), queues("executor-1")
    handled: list[str] = []

    def handle(command: OrderCommand) -> None:
        if _command_id(command) == "order-2":
            raise RuntimeError("a bug")
        handled.append(_command_id(command))

    queue.consume(handle)
    await queue.own({BTC})
    await admin.xadd(f"te:cmd:{BTC}", {b"c": b"not json"})
    for n in range(1, 4):
        await intake.send(AddOrder(_order(n)))
    async with asyncio.timeout(TIMEOUT):
        while len(handled) < 2:  # noqa: ASYNC110  (polling a plain list is simplest here)
            await asyncio.sleep(0.02)
    assert handled == ["order-1", "order-3"]
    assert (await admin.xpending(f"te:cmd:{BTC}", "executors"))["pending"] == 0


async def test_lag_is_how_long_the_last_command_waited_and_zero_when_idle(
    queues: Callable[..., RedisCommandQueue],
) -> None:
    intake, queue, executor = queues("api"), queues("executor-1", block_ms=100), Executor()
    await intake.send(AddOrder(_order(1)))
    await asyncio.sleep(0.3)  # sent while nobody reads
    queue.consume(executor.handle)
    await queue.own({BTC})
    await executor.wait_ids(1)
    assert 0.25 <= queue.lag_s < 0.3 + TIMEOUT
    async with asyncio.timeout(TIMEOUT):
        while queue.lag_s:  # noqa: ASYNC110  (a property, nothing to wait on)
            await asyncio.sleep(0.05)


def test_the_book_relay_carries_every_level_and_the_depth_flag() -> None:
    from app.adapters.redis_book import decode_book, encode_book
    from app.core.domain import BookUpdate

    depth = BookUpdate(
        "BTCUSDT", 7,
        ((Decimal("100.5"), Decimal("1")), (Decimal("100.4"), Decimal("2.25"))),
        ((Decimal("100.6"), Decimal("3")), (Decimal("100.7"), Decimal("0.5"))),
        1000.25, full_depth=True,
    )  # fmt: skip
    assert decode_book(encode_book(depth)) == depth
    ticker = BookUpdate("BTCUSDT", 8, ((Decimal(1), Decimal(2)),), (), 1001.0)
    assert decode_book(encode_book(ticker)) == ticker
    # A quote relayed by an older process (no depth flag) is a ticker-like top of book.
    assert not decode_book(b'{"s":"X","u":1,"t":1.0,"b":[["1","2"]],"a":[]}').full_depth
