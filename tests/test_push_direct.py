"""Event frames built once and written straight to the sockets of the clients that keep up.

A client whose socket is empty enough gets each round of events in one write of the
pre-built frames, without its writer task; one that is behind gets them through its
bounded queue, in order, and is closed when that overflows. Never a frame twice, never one
out of order, nothing written once the client is closing.
"""

from __future__ import annotations

import asyncio
import struct
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.http import WebSocketWriter
from aiohttp.test_utils import TestClient

from app.adapters.inprocess import InProcessBus
from app.core.domain import OrderStatus, Side
from app.core.events import EventKind, OrderEvent
from app.core.order import Order
from app.emulator.server import BinanceEmulator
from app.push.client import (
    DIRECT_BUFFER_LIMIT,
    MAX_UNFLUSHED,
    OVERFLOW_CLOSE_CODE,
    PushClient,
)
from app.push.frames import Frame
from app.push.hub import PushHub
from tests.engine_helpers import ticker
from tests.helpers import place, stream


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered  # what get_write_buffer_size says
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class FakeSocket:
    """What the writer task uses of aiohttp's WebSocketResponse."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self.sent: list[str] = []
        self.closed = False
        self.close_code: int | None = None

    async def send_str(self, data: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()  # a peer that never reads
        self.sent.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed, self.close_code = True, code
        return True


def texts(wire: bytes) -> list[str]:
    """The text frames in bytes a server wrote (unmasked)."""
    found, at = [], 0
    while at < len(wire):
        assert wire[at] == 0x81  # FIN, text
        size, at = wire[at + 1], at + 2
        if size == 126:
            (size,), at = struct.unpack_from("!H", wire, at), at + 2
        elif size == 127:
            (size,), at = struct.unpack_from("!Q", wire, at), at + 8
        found.append(wire[at : at + size].decode())
        at += size
    return found


def fill_event(seq: int, order_id: str = "order-1", owner: str = "me") -> OrderEvent:
    order = Order(
        order_id=order_id, owner=owner, client_order_id=None, symbol="X", side=Side.BUY,
        order_size=Decimal(1000), price=Decimal(1), timeout_s=30, status=OrderStatus.OPEN,
        created_at_us=1, updated_at_us=1, expires_at_us=2,
    )  # fmt: skip
    fill = order.record_fill(seq, Decimal(1), Decimal(1), seq)
    fill.seq = seq
    return OrderEvent(EventKind.FILL, order.snapshot(), fill)


def seqs(frames: list[str]) -> list[int]:
    return [orjson.loads(frame)["fill"]["seq"] for frame in frames]


def new_hub() -> PushHub:
    return PushHub(InProcessBus(), acquire_book=lambda s: None, release_book=lambda s: None)


def watching(hub: PushHub, transport: FakeTransport | None, socket: FakeSocket) -> PushClient:
    client = PushClient(socket, "me", max_queue=10, transport=transport)  # type: ignore[arg-type]
    hub.add_client(client)
    hub.watch_orders_channel(client)
    client.start()
    return client


async def a_round() -> None:
    """Let the hub's flush (called soon after a round of events) run."""
    await asyncio.sleep(0)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1000, 65535, 65536, 70_000])
async def test_a_frame_is_the_bytes_aiohttp_itself_would_write(size: int) -> None:
    class Protocol:
        _paused = False

    payload = orjson.dumps("x" * max(0, size - 2)) if size >= 2 else b"1" * size
    transport = FakeTransport()
    writer = WebSocketWriter(Protocol(), transport, use_mask=False)  # type: ignore[arg-type]
    await writer.send_frame(payload, WSMsgType.TEXT)
    frame = Frame.of(payload)
    assert frame.wire == b"".join(transport.writes)
    assert frame.text == payload.decode()


async def test_clients_that_keep_up_get_a_round_in_one_write_without_their_writer() -> None:
    hub = new_hub()
    pairs = [(FakeTransport(), FakeSocket()) for _ in range(3)]
    clients = [watching(hub, transport, socket) for transport, socket in pairs]
    hub.dispatch(fill_event(1))
    hub.dispatch(fill_event(2))  # the same round: handed over together by the bus
    assert all(not transport.writes for transport, _ in pairs)  # not before the round ends
    await a_round()
    for transport, socket in pairs:
        assert len(transport.writes) == 1  # one write for both events
        assert seqs(texts(transport.writes[0])) == [1, 2]
        assert socket.sent == []  # nothing went through the writer task
    assert pairs[0][0].writes[0] == pairs[1][0].writes[0]  # the same bytes for everyone
    hub.dispatch(fill_event(3))
    await a_round()
    assert [seqs(texts(b"".join(t.writes))) for t, _ in pairs] == [[1, 2, 3]] * 3
    for client in clients:
        client.close(1000, "done")
        await client.finish()


async def test_a_client_behind_gets_its_frames_through_the_queue_in_order() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(), FakeSocket()
    client = watching(hub, transport, socket)
    hub.dispatch(fill_event(1))
    await a_round()
    transport.buffered = DIRECT_BUFFER_LIMIT + 1  # the peer stopped reading for a moment
    hub.dispatch(fill_event(2))
    hub.dispatch(fill_event(3))
    transport.buffered = 0  # it caught up: but 2 and 3 are queued, so 4 waits behind them
    hub.dispatch(fill_event(4))
    await a_round()
    client.close(1000, "done")
    await client.finish()
    assert seqs(texts(b"".join(transport.writes))) == [1]
    assert seqs(socket.sent) == [2, 3, 4]


async def test_a_message_sent_after_a_push_goes_out_after_it() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(), FakeSocket()
    client = watching(hub, transport, socket)
    hub.dispatch(fill_event(1))
    client.send('{"type":"error","message":"later"}')  # an answer to the client, queued
    assert seqs(texts(b"".join(transport.writes))) == [1]  # written before it was queued
    hub.dispatch(fill_event(2))  # the queue is not empty: this one waits behind the answer
    await a_round()
    client.close(1000, "done")
    await client.finish()
    assert socket.sent[0] == '{"type":"error","message":"later"}'
    assert seqs(socket.sent[1:]) == [2]


async def test_a_stuck_socket_is_closed_and_the_others_get_everything_directly() -> None:
    hub = new_hub()
    stuck_transport, stuck_socket = FakeTransport(), FakeSocket(stuck=True)
    stuck = watching(hub, stuck_transport, stuck_socket)
    healthy_transport = FakeTransport()
    healthy = watching(hub, healthy_transport, FakeSocket())
    for seq in range(1, 201):
        if seq == 21:  # its buffer filled up (read once per round: this one starts at 21)
            stuck_transport.buffered = DIRECT_BUFFER_LIMIT * 4
        hub.dispatch(fill_event(seq))
        if seq % 10 == 0:
            await a_round()
    await stuck.finish()
    assert stuck.overflowed and stuck_socket.close_code == OVERFLOW_CLOSE_CODE
    assert seqs(texts(b"".join(stuck_transport.writes))) == list(range(1, 21))
    await a_round()
    assert seqs(texts(b"".join(healthy_transport.writes))) == list(range(1, 201))
    healthy.close(1000, "done")
    await healthy.finish()


async def test_nothing_is_written_once_the_socket_is_closing() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(), FakeSocket()
    client = watching(hub, transport, socket)
    hub.dispatch(fill_event(1))
    transport.closing = True  # the peer went away before the round ended
    await a_round()
    hub.dispatch(fill_event(2))
    await a_round()
    assert transport.writes == []
    client.close(1000, "done")
    await client.finish()


async def test_frames_pushed_before_a_close_go_out_before_it() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(), FakeSocket()
    client = watching(hub, transport, socket)
    hub.dispatch(fill_event(1))
    client.close(1001, "server shutdown")  # in the same round
    await client.finish()
    assert seqs(texts(b"".join(transport.writes))) == [1]
    assert socket.close_code == 1001
    hub.dispatch(fill_event(2))  # after the close: never written
    await a_round()
    assert seqs(texts(b"".join(transport.writes))) == [1]


async def test_a_long_round_goes_through_the_queue_once_the_socket_is_full() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(), FakeSocket()
    client = watching(hub, transport, socket)
    for seq in range(1, MAX_UNFLUSHED + 1):
        hub.dispatch(fill_event(seq))  # one round, as many frames as are held at most
    assert seqs(texts(b"".join(transport.writes))) == list(range(1, MAX_UNFLUSHED + 1))
    transport.buffered = DIRECT_BUFFER_LIMIT + 1  # that write did not all fit in the socket
    for seq in range(MAX_UNFLUSHED + 1, MAX_UNFLUSHED + 11):
        hub.dispatch(fill_event(seq))  # the same round goes on: queued, and bounded there
    await a_round()
    client.close(1000, "done")
    await client.finish()
    assert len(transport.writes) == 1
    assert seqs(socket.sent) == list(range(MAX_UNFLUSHED + 1, MAX_UNFLUSHED + 11))


async def test_over_real_sockets_each_client_gets_each_fill_once_in_order(
    client: TestClient,
    emulator: BinanceEmulator,  # type: ignore[type-arg]
) -> None:
    fills = 6
    channel = [await client.ws_connect("/ws?channel=orders") for _ in range(6)]
    for ws in channel:
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
    order = await place(client, order_size=str(fills), price="10")
    watchers = [await client.ws_connect(f"/ws?order_id={order['order_id']}") for _ in range(2)]
    await emulator.wait_subscribed(stream("LTCBTC"))
    for n in range(fills):  # a new, higher level each time, one unit at each
        emulator.book_ticker("LTCBTC", f"10.{n}", "1", "11", "1")
    for ws in [*channel, *watchers]:
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while not received or received[-1].get("event") != "filled":
                received.append(await ws.receive_json())
        fill_seqs = [m["fill"]["seq"] for m in received if m.get("event") == "fill"]
        snapshot = [m for m in received if m.get("event") == "snapshot"]
        already = len(snapshot[0]["order"]["fills"]) if snapshot else 0  # watchers only
        assert fill_seqs == list(range(already + 1, fills + 1))
        await ws.close()


def book_ids(frames: list[str]) -> list[int]:
    return [orjson.loads(frame)["update_id"] for frame in frames]


def watching_book(hub: PushHub, transport: FakeTransport, socket: FakeSocket) -> PushClient:
    client = PushClient(socket, "me", max_queue=10, transport=transport)  # type: ignore[arg-type]
    hub.add_client(client)
    hub.watch_book(client, "X")
    client.start()
    return client


async def test_quotes_go_straight_to_a_client_that_keeps_up() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(), FakeSocket()
    client = watching_book(hub, transport, socket)
    for uid in range(1, 4):
        hub.on_update(ticker(uid, str(uid), "1", str(uid + 1), "1"))
        await a_round()
    client.close(1000, "done")
    await client.finish()
    assert book_ids(texts(b"".join(transport.writes))) == [1, 2, 3]  # every one, in order
    assert socket.sent == []


async def test_a_client_behind_gets_only_the_latest_quote_and_never_an_older_one_after() -> None:
    hub = new_hub()
    transport, socket = FakeTransport(buffered=DIRECT_BUFFER_LIMIT + 1), FakeSocket()
    client = watching_book(hub, transport, socket)
    for uid in range(1, 101):
        hub.on_update(ticker(uid, str(uid), "1", str(uid + 1), "1"))
    transport.buffered = 0  # it caught up, but quote 100 still waits for the writer
    hub.on_update(ticker(101, "101", "1", "102", "1"))  # so this one waits too: latest wins
    assert client.pending == 1
    await a_round()
    await a_round()
    hub.on_update(ticker(102, "102", "1", "103", "1"))  # nothing waits now: straight out
    await a_round()
    client.close(1000, "done")
    await client.finish()
    assert book_ids(socket.sent) == [101]
    assert book_ids(texts(b"".join(transport.writes))) == [102]


async def test_a_socket_failing_its_write_ends_that_client_only() -> None:
    class BrokenTransport(FakeTransport):
        def write(self, data: bytes) -> None:
            raise RuntimeError("the handler is closed")

    hub = new_hub()
    broken = watching(hub, BrokenTransport(), FakeSocket())
    healthy_transport = FakeTransport()
    healthy = watching(hub, healthy_transport, FakeSocket())
    hub.dispatch(fill_event(1))
    await a_round()
    async with asyncio.timeout(1):
        await broken.finish()  # its writer ended
    assert broken.closing
    hub.dispatch(fill_event(2))
    await a_round()
    assert seqs(texts(b"".join(healthy_transport.writes))) == [1, 2]
    healthy.close(1000, "done")
    await healthy.finish()
