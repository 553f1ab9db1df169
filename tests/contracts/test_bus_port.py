"""The event bus port's contract, written once and run against every adapter.

Only the port (`app.ports.EventBus`, `Subscription`) is used: subscriptions are read with
`async for` under a timeout, never through an adapter's internals. An adapter joins by
adding a `BusAdapter` to `ADAPTERS`: `open()` makes a fresh, isolated bus and tears it down
on exit; what it yields connects handles to that one bus (one per process in a deployment;
the in-process adapter hands out the same object each time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest

from app.adapters.inprocess import InProcessBus
from app.adapters.redis_bus import RedisEventBus
from app.core.domain import OrderStatus, Side
from app.core.events import EventKind, OrderEvent, order_event
from app.core.order import Order
from app.ports import EventBus, Subscription
from tests.engine_redis import redis_server_url, unique_prefix

D = Decimal
TIMEOUT = 5.0

Connect = Callable[[], Awaitable[EventBus]]


@dataclass(frozen=True)
class BusAdapter:
    open: Callable[[], AbstractAsyncContextManager[Connect]]
    # Why `subscribe(maxsize)` cannot bound this adapter's subscriptions (None: it can).
    cannot_bound: str | None = None


@asynccontextmanager
async def _inprocess() -> AsyncIterator[Connect]:
    bus = InProcessBus()

    async def connect() -> EventBus:
        return bus

    yield connect


@asynccontextmanager
async def _redis() -> AsyncIterator[Connect]:
    url, stream = redis_server_url(), f"{unique_prefix()}events"  # one stream per test
    handles: list[RedisEventBus] = []

    async def connect() -> EventBus:
        bus = RedisEventBus(url, stream=stream)
        handles.append(bus)
        await bus.start()  # as a process does at start-up, before it serves
        return bus

    try:
        yield connect
    finally:
        for bus in handles:
            await bus.close()


ADAPTERS: dict[str, BusAdapter] = {
    "inprocess": BusAdapter(_inprocess),
    "redis": BusAdapter(_redis),
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> BusAdapter:
    return ADAPTERS[request.param]


@pytest.fixture
async def connect(adapter: BusAdapter) -> AsyncIterator[Connect]:
    async with adapter.open() as connect:
        yield connect


@pytest.fixture
async def bus(connect: Connect) -> EventBus:
    return await connect()


def _order(n: int, *, symbol: str = "BTCUSDT") -> Order:
    return Order(
        order_id=f"order-{n}", owner="alice", client_order_id=None, symbol=symbol,
        side=Side.SELL, order_size=D("10"), price=D("1"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n, expires_at_us=n + 30_000_000,
    )  # fmt: skip


def _events(first: int, count: int) -> list[OrderEvent]:
    return [order_event(EventKind.ACCEPTED, _order(n)) for n in range(first, first + count)]


def _ids(events: Sequence[OrderEvent]) -> list[str]:
    return [event.order_id for event in events]


async def _take(reader: AsyncIterator[OrderEvent], count: int) -> list[OrderEvent]:
    """The next `count` events, or a failure if they do not come in time."""
    async with asyncio.timeout(TIMEOUT):
        return [await anext(reader) for _ in range(count)]


async def _ends(reader: AsyncIterator[OrderEvent]) -> list[OrderEvent]:
    """Whatever is left, until the subscription ends (a failure if it does not, in time)."""
    left = []
    async with asyncio.timeout(TIMEOUT):
        async for event in reader:
            left.append(event)
    return left


@asynccontextmanager
async def _subscribed(bus: EventBus, maxsize: int = 0) -> AsyncIterator[AsyncIterator[OrderEvent]]:
    subscription: Subscription = bus.subscribe(maxsize)
    try:
        yield aiter(subscription)
    finally:
        subscription.close()


async def test_a_subscriber_gets_every_event_after_it_subscribed_in_publish_order(
    bus: EventBus,
) -> None:
    async with _subscribed(bus) as reader:
        sent = _events(0, 5)
        await bus.publish(sent[:3])  # a batch keeps its order
        await bus.publish(sent[3:4])
        await bus.publish([])  # nothing to publish is nothing delivered
        await bus.publish(sent[4:])
        assert _ids(await _take(reader, 5)) == _ids(sent)
        later = _events(10, 200)
        for event in later:
            await bus.publish([event])
        assert _ids(await _take(reader, 200)) == _ids(later)


async def test_a_subscription_gets_nothing_published_before_it(bus: EventBus) -> None:
    async with _subscribed(bus) as early:
        before, after = _events(0, 2), _events(2, 2)
        await bus.publish(before)
        async with _subscribed(bus) as late:
            await bus.publish(after)
            assert _ids(await _take(late, 2)) == _ids(after)
            assert _ids(await _take(early, 4)) == _ids(before + after)


async def test_two_subscribers_each_get_everything(bus: EventBus) -> None:
    async with _subscribed(bus) as first, _subscribed(bus) as second:
        sent = _events(0, 50)
        for n in range(0, 50, 5):
            await bus.publish(sent[n : n + 5])
        assert _ids(await _take(second, 50)) == _ids(sent)  # the other one's reading waits
        assert _ids(await _take(first, 50)) == _ids(sent)


async def test_subscribers_on_other_handles_get_what_one_handle_publishes(
    connect: Connect,
) -> None:
    publisher, listener = await connect(), await connect()
    async with _subscribed(listener) as reader, _subscribed(publisher) as own:
        sent = _events(0, 3)
        await publisher.publish(sent)
        assert _ids(await _take(reader, 3)) == _ids(sent)
        assert _ids(await _take(own, 3)) == _ids(sent)


async def test_close_ends_the_iteration(bus: EventBus) -> None:
    idle = bus.subscribe()
    idle.close()
    assert await _ends(aiter(idle)) == []  # closed before reading: ends at once

    waiting = bus.subscribe()
    reader = aiter(waiting)
    await bus.publish(_events(0, 1))
    assert _ids(await _take(reader, 1)) == ["order-0"]
    pending = asyncio.ensure_future(anext(reader))  # blocked, waiting for an event
    await asyncio.sleep(0.01)
    assert not pending.done()
    waiting.close()
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(StopAsyncIteration):
            await pending
    await bus.publish(_events(1, 1))  # publishing to a closed subscription is harmless
    waiting.close()  # and closing twice too


async def test_closing_one_subscription_leaves_the_others(bus: EventBus) -> None:
    async with _subscribed(bus) as kept:
        gone = bus.subscribe()
        gone.close()
        await bus.publish(_events(0, 2))
        assert _ids(await _take(kept, 2)) == ["order-0", "order-1"]


async def test_a_bounded_subscription_that_overflows_ends(
    adapter: BusAdapter, bus: EventBus
) -> None:
    if adapter.cannot_bound:
        pytest.skip(adapter.cannot_bound)
    async with _subscribed(bus, maxsize=3) as slow, _subscribed(bus) as unbounded:
        sent = _events(0, 20)
        for event in sent:
            await bus.publish([event])
        got = await _ends(slow)  # it ends: a silent drop would deliver 3 and then hang
        assert len(got) < len(sent)
        came = set(_ids(got))
        assert _ids(got) == [i for i in _ids(sent) if i in came]  # once each, in order
        await bus.publish(_events(20, 1))
        with pytest.raises(StopAsyncIteration):  # ended for good
            await anext(slow)
        assert _ids(await _take(unbounded, 21)) == [*_ids(sent), "order-20"]


async def test_a_bounded_subscription_that_keeps_up_does_not_end(
    adapter: BusAdapter, bus: EventBus
) -> None:
    if adapter.cannot_bound:
        pytest.skip(adapter.cannot_bound)
    async with _subscribed(bus, maxsize=2) as reader:
        for n in range(10):
            sent = _events(2 * n, 2)
            await bus.publish(sent)  # never more than maxsize waiting
            assert _ids(await _take(reader, 2)) == _ids(sent)


async def test_events_round_trip_intact(bus: EventBus) -> None:
    order = Order(
        order_id="order-exact", owner="bob", client_order_id="client-7", symbol="ETHBTC",
        side=Side.BUY, order_size=D("1.000000000000000001"),
        price=D("12345678901234567890.123456789012345678"), timeout_s=12.5,
        status=OrderStatus.OPEN, created_at_us=1_700_000_000_000_001,
        updated_at_us=1_700_000_000_000_001, expires_at_us=1_700_000_012_500_001,
    )  # fmt: skip
    accepted = order_event(EventKind.ACCEPTED, order)
    fill = order.record_fill(987654321, D("0.000000000000000001"), D("0.500000000000000001"), 7)
    with_fill = order_event(EventKind.FILL, order, fill)
    order.finish(OrderStatus.CANCELLED, "cancelled by request: ünïcode ok", 9)
    cancelled = order_event(EventKind.CANCELLED, order)
    sent = [accepted, with_fill, cancelled]
    async with _subscribed(bus) as reader:
        await bus.publish(sent)
        got = await _take(reader, len(sent))
    for received, original in zip(got, sent, strict=True):
        assert received.kind is original.kind
        assert received.order == original.order  # every field, Decimals by value
        assert received.fill == original.fill
        assert received.order.fills == []
    exact = got[1]
    assert exact.fill is not None and exact.fill.seq == 1 and exact.fill_seq == 1
    assert (exact.fill.update_id, exact.fill.ts_us) == (987654321, 7)
    numbers = [exact.fill.price, exact.fill.qty, exact.order.price, exact.order.order_size]
    numbers += [exact.order.filled_qty, exact.order.notional]
    assert all(type(number) is Decimal for number in numbers)  # not floats that compare equal
    assert numbers[:4] == [
        D("1E-18"), D("0.500000000000000001"),
        D("12345678901234567890.123456789012345678"), D("1.000000000000000001"),
    ]  # fmt: skip
    assert exact.order.status is OrderStatus.PARTIALLY_FILLED
    assert exact.order.filled_qty == D("0.500000000000000001")
    assert got[0].order.filled_qty == 0 and got[0].order.client_order_id == "client-7"
    assert got[0].fill is None and got[0].fill_seq == 0
    assert got[2].order.reason == "cancelled by request: ünïcode ok"
    assert got[2].kind.is_final and got[2].order.status is OrderStatus.CANCELLED


async def test_every_event_kind_round_trips(bus: EventBus) -> None:
    sent = [order_event(kind, _order(n)) for n, kind in enumerate(EventKind)]
    async with _subscribed(bus) as reader:
        await bus.publish(sent)
        got = await _take(reader, len(sent))
    assert [(e.kind, e.order_id) for e in got] == [(e.kind, e.order_id) for e in sent]
