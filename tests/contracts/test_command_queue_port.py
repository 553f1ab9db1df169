"""The command queue port's contract, written once and run against every adapter.

Only the port (`app.ports.CommandQueue`) is used. An adapter joins by adding a
`QueueAdapter` to `ADAPTERS`: `open()` makes a fresh, isolated queue and tears it down on
exit; what it yields connects handles to that one queue (intake sends on one, execution
consumes on another in a deployment; the in-process adapter hands out the same object).
Delivery may be asynchronous, so the tests wait (with a timeout) for what they expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest

from app.adapters.inprocess import InProcessCommandQueue
from app.adapters.redis_commands import RedisCommandQueue
from app.core.commands import AddOrder, CancelOrder, OrderCommand
from app.core.domain import OrderStatus, Side
from app.core.order import Order
from app.ports import CommandQueue
from tests.engine_redis import redis_server_url, unique_prefix

D = Decimal
TIMEOUT = 5.0

Connect = Callable[[], Awaitable[CommandQueue]]


@dataclass(frozen=True)
class QueueAdapter:
    open: Callable[[], AbstractAsyncContextManager[Connect]]


@asynccontextmanager
async def _inprocess() -> AsyncIterator[Connect]:
    queue = InProcessCommandQueue()

    async def connect() -> CommandQueue:
        return queue

    yield connect


@asynccontextmanager
async def _redis() -> AsyncIterator[Connect]:
    url, prefix = redis_server_url(), f"{unique_prefix()}cmd:"  # streams of this test only
    handles: list[RedisCommandQueue] = []

    async def connect() -> CommandQueue:
        queue = RedisCommandQueue(url, partitions=4, consumer=f"c{len(handles)}", prefix=prefix)
        handles.append(queue)
        await queue.own(range(4))  # the lease keeper's part: every partition is this one's
        return queue

    try:
        yield connect
    finally:
        for queue in handles:
            await queue.close()


ADAPTERS: dict[str, QueueAdapter] = {
    "inprocess": QueueAdapter(_inprocess),
    "redis": QueueAdapter(_redis),
}


@pytest.fixture(params=sorted(ADAPTERS))
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Connect]:
    async with ADAPTERS[request.param].open() as connect:
        yield connect


class Consumer:
    """Records what the queue delivers; `wait` until a count has arrived."""

    def __init__(self) -> None:
        self.received: list[OrderCommand] = []
        self._arrived = asyncio.Event()

    def handle(self, command: OrderCommand) -> None:
        self.received.append(command)
        self._arrived.set()

    async def wait(self, count: int) -> list[OrderCommand]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received


def _order(n: int, *, symbol: str = "BTCUSDT") -> Order:
    return Order(
        order_id=f"order-{n}", owner="alice", client_order_id=None, symbol=symbol,
        side=Side.BUY, order_size=D("2"), price=D("1"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=n, updated_at_us=n, expires_at_us=n + 30_000_000,
    )  # fmt: skip


def _key(command: OrderCommand) -> tuple[str, str, str]:
    if isinstance(command, AddOrder):
        return ("add", command.order.order_id, command.symbol)
    return ("cancel", command.order_id, command.symbol)


def _keys(commands: Sequence[OrderCommand]) -> list[tuple[str, str, str]]:
    return [_key(command) for command in commands]


async def _exactly(consumer: Consumer, sender: CommandQueue, sent: list[OrderCommand]) -> None:
    """`sent` arrived, and nothing else: a marker sent last (same symbol) comes next."""
    marker = CancelOrder("marker", sent[-1].symbol)
    await sender.send(marker)
    received = await consumer.wait(len(sent) + 1)
    assert _keys(received) == _keys([*sent, marker])


async def test_commands_arrive_in_send_order(connect: Connect) -> None:
    queue, consumer = await connect(), Consumer()
    queue.consume(consumer.handle)
    sent: list[OrderCommand] = []
    for n in range(100):
        command: OrderCommand = (
            AddOrder(_order(n)) if n % 3 else CancelOrder(f"order-{n}", "BTCUSDT")
        )
        sent.append(command)
        await queue.send(command)
    await _exactly(consumer, queue, sent)


async def test_commands_sent_before_consume_are_delivered_once_it_starts(
    connect: Connect,
) -> None:
    sender, receiver = await connect(), await connect()
    early = [AddOrder(_order(n)) for n in range(3)]
    for command in early:
        await sender.send(command)
    await asyncio.sleep(0.05)  # nobody consumes yet: they wait, they are not lost
    consumer = Consumer()
    receiver.consume(consumer.handle)
    assert _keys(await consumer.wait(3)) == _keys(early)
    late = AddOrder(_order(3))
    await sender.send(late)
    await _exactly(consumer, sender, [*early, late])  # after the early ones, each once


async def test_per_symbol_order_is_kept_with_interleaved_symbols(connect: Connect) -> None:
    sender, receiver = await connect(), await connect()
    consumer = Consumer()
    receiver.consume(consumer.handle)
    symbols = ["BTCUSDT", "ETHBTC", "LTCBTC"]
    sent: list[OrderCommand] = []
    for n in range(60):
        symbol = symbols[(n * 7 // 3) % 3]  # an irregular interleaving
        command: OrderCommand = (
            CancelOrder(f"order-{n}", symbol) if n % 4 == 3 else AddOrder(_order(n, symbol=symbol))
        )
        sent.append(command)
        await sender.send(command)
    markers = [CancelOrder("marker", symbol) for symbol in symbols]
    for marker in markers:
        await sender.send(marker)
    received = await consumer.wait(len(sent) + len(markers))
    assert sorted(_keys(received)) == sorted(_keys([*sent, *markers]))  # each exactly once
    for symbol in symbols:
        assert [k for k in _keys(received) if k[2] == symbol] == [
            k for k in _keys([*sent, CancelOrder("marker", symbol)]) if k[2] == symbol
        ], symbol


async def test_an_add_order_carries_the_order_intact(connect: Connect) -> None:
    sender, receiver = await connect(), await connect()
    consumer = Consumer()
    receiver.consume(consumer.handle)
    order = Order(
        order_id="order-exact", owner="bob", client_order_id="client-7", symbol="ETHBTC",
        side=Side.SELL, order_size=D("1.000000000000000001"),
        price=D("12345678901234567890.123456789012345678"), timeout_s=12.5,
        status=OrderStatus.OPEN, created_at_us=1_700_000_000_000_001,
        updated_at_us=1_700_000_000_000_002, expires_at_us=1_700_000_012_500_001,
    )  # fmt: skip
    await sender.send(AddOrder(order))
    (received,) = await consumer.wait(1)
    assert isinstance(received, AddOrder)
    assert received.order == order and received.symbol == "ETHBTC"
    numbers = [received.order.price, received.order.order_size, received.order.filled_qty]
    assert all(type(number) is Decimal for number in numbers)  # not floats that compare equal
    assert numbers[:2] == [D("12345678901234567890.123456789012345678"), D("1.000000000000000001")]
    assert received.order.side is Side.SELL and received.order.status is OrderStatus.OPEN
    assert (received.order.owner, received.order.client_order_id) == ("bob", "client-7")
    assert received.order.timeout_s == 12.5 and received.order.fills == []


async def test_a_cancel_order_carries_its_order_id_and_symbol(connect: Connect) -> None:
    sender, receiver = await connect(), await connect()
    consumer = Consumer()
    receiver.consume(consumer.handle)
    sent = [CancelOrder("order-ünï-1", "LTCBTC"), CancelOrder("order-2", "ETHBTC")]
    for command in sent:
        await sender.send(command)
    received = await consumer.wait(2)
    assert all(type(command) is CancelOrder for command in received)
    # Order is promised per symbol only (these two may travel different partitions).
    assert sorted(received, key=lambda c: c.symbol) == sorted(sent, key=lambda c: c.symbol)
