"""The slow-client rule, at the unit level: a stuck socket delays nobody."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson

from app.adapters.inprocess import InProcessBus
from app.core.domain import OrderStatus, Side
from app.core.events import EventKind, OrderEvent
from app.core.order import Order
from app.push.client import OVERFLOW_CLOSE_CODE, PushClient
from app.push.hub import PushHub
from tests.engine_helpers import ticker


class FakeSocket:
    def __init__(self, *, stuck: bool) -> None:
        self.stuck = stuck
        self.sent: list[str] = []
        self.closed = False
        self.close_code: int | None = None
        self.close_message = b""

    async def send_str(self, data: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()  # a peer that never reads: the send never completes
        self.sent.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed, self.close_code, self.close_message = True, code, message
        return True


def _event(seq: int) -> OrderEvent:
    order = Order(
        order_id="order-1", owner="me", client_order_id=None, symbol="X", side=Side.BUY,
        order_size=Decimal(100), price=Decimal(1), timeout_s=30, status=OrderStatus.OPEN,
        created_at_us=1, updated_at_us=1, expires_at_us=2,
    )  # fmt: skip
    fill = order.record_fill(seq, Decimal(1), Decimal(1), seq)
    fill.seq = seq
    return OrderEvent(EventKind.FILL, order.snapshot(), fill)


async def test_a_stuck_client_is_closed_and_the_others_get_everything() -> None:
    hub = PushHub(InProcessBus(), acquire_book=lambda s: None, release_book=lambda s: None)
    stuck_socket, healthy_socket = FakeSocket(stuck=True), FakeSocket(stuck=False)
    stuck = PushClient(stuck_socket, "me", max_queue=10)  # type: ignore[arg-type]
    healthy = PushClient(healthy_socket, "me", max_queue=10_000)  # type: ignore[arg-type]
    for client in (stuck, healthy):
        hub.add_client(client)
        hub.watch_orders_channel(client)
        client.start()
    for seq in range(1, 501):
        hub.dispatch(_event(seq))  # synchronous: the producer never waits for a socket
        if seq % 50 == 0:
            await asyncio.sleep(0)
    await stuck.finish()
    assert stuck.closing and stuck.overflowed
    assert stuck_socket.close_code == OVERFLOW_CLOSE_CODE == 1013
    assert b"too slow" in stuck_socket.close_message
    healthy.close(1000, "done")
    await healthy.finish()
    assert len(healthy_socket.sent) == 500  # nobody else lost anything
    seqs = [orjson.loads(frame)["fill"]["seq"] for frame in healthy_socket.sent]
    assert seqs == list(range(1, 501))  # in order


async def test_book_quotes_are_conflated_per_client() -> None:
    hub = PushHub(InProcessBus(), acquire_book=lambda s: None, release_book=lambda s: None)
    socket = FakeSocket(stuck=False)
    client = PushClient(socket, "me", max_queue=10)  # type: ignore[arg-type]
    hub.add_client(client)
    hub.watch_book(client, "X")
    for uid in range(1, 1001):
        hub.on_update(ticker(uid, str(uid), "1", str(uid + 1), "1"))
    assert client.pending == 1  # only the latest is waiting
    client.start()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    client.close(1000, "done")
    await client.finish()
    assert len(socket.sent) == 1 and '"update_id":1000' in socket.sent[0]


async def test_events_of_another_owner_are_never_pushed() -> None:
    hub = PushHub(InProcessBus(), acquire_book=lambda s: None, release_book=lambda s: None)
    socket = FakeSocket(stuck=False)
    mallory = PushClient(socket, "mallory", max_queue=10)  # type: ignore[arg-type]
    hub.add_client(mallory)
    hub.watch_orders_channel(mallory)
    hub.watch_order(mallory, "order-1")
    hub.start_order(mallory, "order-1", fill_seq=0, final=False)
    hub.dispatch(_event(1))
    assert mallory.pending == 0


async def test_nothing_is_kept_for_a_book_nobody_watches_any_more() -> None:
    released: list[str] = []
    hub = PushHub(InProcessBus(), acquire_book=lambda s: None, release_book=released.append)
    client = PushClient(FakeSocket(stuck=False), "me", max_queue=10)  # type: ignore[arg-type]
    hub.add_client(client)
    for n in range(100):  # a client inventing symbols
        hub.watch_book(client, f"SYM{n}")
        quote = ticker(1, "1", "1", "2", "1")
        quote.symbol = f"SYM{n}"
        hub.on_update(quote)
        hub.unwatch_book(client, f"SYM{n}")
    assert hub.book_symbols == 0
    assert len(released) == 100
