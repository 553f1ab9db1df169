"""The feed's websocket framing (picows), against a bare picows server that sends exactly
the frames a test asks for: what the aiohttp-based emulator cannot send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
from picows import WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from app.adapters.binance.feed import BinanceFeed
from app.core.domain import BookUpdate, StreamKind

TICKER = orjson.dumps({
    "stream": "btcusdt@bookTicker",
    "data": {"u": 7, "s": "BTCUSDT", "b": "1.5", "B": "2", "a": "3.5", "A": "4"},
})  # fmt: skip


class _Upstream(WSListener):  # type: ignore[misc]
    """Sends `on_connect(transport)`'s frames as soon as the socket is open."""

    def __init__(self, on_connect: Callable[[WSTransport], None]) -> None:
        self.on_connect = on_connect

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.on_connect(transport)


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[Callable[[WSTransport], None]], Any]]:
    servers: list[asyncio.Server] = []

    async def serve(on_connect: Callable[[WSTransport], None]) -> str:
        def listener(request: WSUpgradeRequest) -> _Upstream:
            return _Upstream(on_connect)

        server = await ws_create_server(listener, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    yield serve
    for server in servers:
        server.close()


async def _first_update(url: str, check: Callable[[BinanceFeed], object] = lambda f: None) -> Any:
    got: asyncio.Future[tuple[BookUpdate, object]] = asyncio.get_running_loop().create_future()
    feed: BinanceFeed

    def on_update(update: BookUpdate) -> None:
        if not got.done():
            got.set_result((update, check(feed)))

    feed = BinanceFeed(url, StreamKind.BOOK_TICKER, on_update)
    await feed.start()
    try:
        feed.acquire("BTCUSDT")
        async with asyncio.timeout(5):
            return await got
    finally:
        await feed.stop()


async def test_a_message_split_over_several_frames_is_put_together(upstream: Any) -> None:
    def send_in_three(transport: WSTransport) -> None:
        first, second, rest = TICKER[:20], TICKER[20:50], TICKER[50:]
        transport.send(WSMsgType.TEXT, first, fin=False)
        transport.send(WSMsgType.CONTINUATION, second, fin=False)
        transport.send(WSMsgType.CONTINUATION, rest, fin=True)

    update, _ = await _first_update(await upstream(send_in_three))
    assert (update.symbol, update.update_id, update.bids, update.asks) == (
        "BTCUSDT", 7, ((Decimal("1.5"), Decimal(2)),), ((Decimal("3.5"), Decimal(4)),),
    )  # fmt: skip


async def test_a_frame_sent_with_the_handshake_is_handled_once_connected(upstream: Any) -> None:
    """The first frame can arrive with the handshake's answer: it is handled after the
    connection is set up (connected, not down), never before."""

    def send_at_once(transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, TICKER)

    update, state = await _first_update(
        await upstream(send_at_once),
        lambda feed: (feed.state()["connected"], feed.down_since("BTCUSDT")),
    )
    assert update.update_id == 7
    assert state == (True, None)
