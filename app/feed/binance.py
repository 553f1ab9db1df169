"""The Binance market-data client: one shared websocket for every symbol.

Streams are added and removed live with SUBSCRIBE/UNSUBSCRIBE on the combined `/stream`
endpoint (partial-depth frames carry no symbol; the combined wrapper names the stream).
Binance allows 5 incoming messages per second per connection, pings and pongs included,
so requests are batched and sent through a token bucket below that; past 1024 streams a
connection is full and another one is opened.

A connection is replaced when it drops (exponential backoff with jitter), when it goes
silent (a LIST_SUBSCRIPTIONS probe goes unanswered), when Binance announces
`serverShutdown`, and before Binance's 24-hour cut. The last two are make-before-break:
the new socket is open and streaming before the old one is closed, so no gap is forced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import structlog

from app.domain import BookUpdate, StreamKind
from app.feed.parsing import MalformedFrame, Response, ServerShutdown, parse_frame

log = structlog.get_logger(__name__)

MAX_URL_STREAMS_CHARS = 2000  # streams named in the URL; the rest go by SUBSCRIBE
MAX_PARAMS_PER_REQUEST = 200
HANDOVER_MAX_S = 5.0  # how long an old socket is read while its replacement starts
HANDOVER_DRAIN_S = 0.25  # and read on after, for frames that were already on their way


_DATA = frozenset({aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY})
_ENDED = frozenset({
    aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
})  # fmt: skip


def _excerpt(data: bytes | str) -> str:
    if isinstance(data, bytes):
        return data[:200].decode(errors="replace")
    return data[:200]


class _Replace(Exception):
    """Leave this socket for a new one, opened before (or after) this one is closed."""

    def __init__(self, why: str, *, make_before_break: bool) -> None:
        super().__init__(why)
        self.make_before_break = make_before_break


class SlidingWindowLimiter:
    """At most `limit` sends in any window of `window_s` seconds.

    A token bucket would allow its burst plus its rate inside one window (8 for 4/s);
    Binance counts a plain sliding window, so this counts the same way.
    """

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = max(1, int(limit))
        self.window_s = window_s
        self._sent: deque[float] = deque()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            while self._sent and now - self._sent[0] >= self.window_s:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return
            await asyncio.sleep(self.window_s - (now - self._sent[0]) + 0.001)


class _Connection:
    """One upstream socket and the streams it should carry."""

    _ids = itertools.count(1)

    def __init__(self, feed: BinanceFeed) -> None:
        self.feed = feed
        self.id = next(self._ids)
        self.wanted: set[str] = set()
        self.subscribed: set[str] = set()
        self.status = "idle"
        self.connected_at: float | None = None
        self.last_frame_at: float | None = None
        self.reconnects = 0
        self._changed = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        # A little over a second: our clock and Binance's count need not agree exactly.
        self._bucket = SlidingWindowLimiter(int(feed.max_messages_per_second), 1.1)
        self._request_ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(connection=self.id)

    # -- what it should carry -------------------------------------------------------------

    @property
    def room(self) -> int:
        return self.feed.max_streams_per_connection - len(self.wanted)

    def want(self, stream: str) -> None:
        self.wanted.add(stream)
        self._changed.set()

    def unwant(self, stream: str) -> None:
        self.wanted.discard(stream)
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"binance-connection-{self.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close(self._ws)

    # -- the socket's life ----------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        ws: aiohttp.ClientWebSocketResponse | None = None
        while True:
            if not self.wanted:
                self.status = "idle"
                await self._close(ws)
                ws = self._ws = None
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                if ws is None:
                    self.status = "connecting"
                    ws = self._ws = await self._open()
                    failures = 0
                await self._serve(ws)
            except _Replace as replace:
                self.reconnects += 1
                self.feed.reconnects += 1
                self._log.info("feed.replacing_connection", why=str(replace))
                if replace.make_before_break:
                    try:
                        new_ws = await self._open()
                    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                        self._log.warning("feed.replacement_failed", error=repr(exc))
                        new_ws = None
                    if new_ws is None:
                        await self._close(ws)
                        self._lost()
                    else:
                        try:
                            await self._hand_over(ws, new_ws)
                        except (_Replace, ConnectionError) as exc:
                            self._log.warning("feed.replacement_closed", error=repr(exc))
                    ws = self._ws = new_ws
                else:
                    await self._close(ws)
                    ws = self._ws = None
                    self._lost()
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
                failures += 1
                self.status = "reconnecting"
                await self._close(ws)
                ws = self._ws = None
                self._lost()
                delay = self.feed.backoff_delay(failures)
                self._log.warning("feed.connection_failed", error=repr(exc), retry_in=delay)
                self.feed.reconnects += 1
                self.reconnects += 1
                await asyncio.sleep(delay)

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        streams = sorted(self.wanted)
        in_url: list[str] = []
        length = 0
        for stream in streams:
            length += len(stream) + 1
            if length > MAX_URL_STREAMS_CHARS:
                break
            in_url.append(stream)
        url = f"{self.feed.base_url}/stream?streams={'/'.join(in_url)}"
        ws = await self.feed.session.ws_connect(
            url,
            autoping=True,
            heartbeat=None,
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            decode_text=False,  # orjson parses the bytes; no str is ever needed
        )
        self.subscribed = set(in_url)
        self.connected_at = time.monotonic()
        self.last_frame_at = self.connected_at
        self.status = "connected"
        self._changed.set()  # the rest of `wanted`, if any, goes by SUBSCRIBE
        self._log.info("feed.connected", streams=len(in_url), url=self.feed.base_url)
        return ws

    async def _close(self, ws: aiohttp.ClientWebSocketResponse | None) -> None:
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    def _lost(self) -> None:
        """Quotes from this socket no longer count as current for its symbols."""
        lost = {stream.partition("@")[0].upper() for stream in self.subscribed}
        self.subscribed = set()
        if lost and self.feed.on_stream_lost is not None:
            self.feed.on_stream_lost(lost)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        sender = asyncio.create_task(self._send_changes(ws), name=f"binance-sender-{self.id}")
        try:
            await self._receive(ws)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read frames until the socket must be left.

        Deadlines (stall, connection age) are checked lazily: one timeout spans many
        frames and is re-armed only when it fires. A timeout per `receive()` costs more
        than the rest of the receive path (aiohttp says as much in its own code).
        """
        feed = self.feed
        stall = feed.stall_timeout_s
        probe_sent_at: float | None = None
        while True:
            assert self.connected_at is not None and self.last_frame_at is not None
            now = time.monotonic()
            age_left = feed.max_connection_age_s - (now - self.connected_at)
            if age_left <= 0:
                raise _Replace("connection age limit", make_before_break=True)
            if not self.wanted and not self.subscribed:
                return  # everything unsubscribed: _run closes the idle socket
            if probe_sent_at is not None and self.last_frame_at >= probe_sent_at:
                probe_sent_at = None  # the socket spoke since the probe: it is alive
            quiet_since = self.last_frame_at if probe_sent_at is None else probe_sent_at
            if now - quiet_since >= stall:
                if probe_sent_at is not None:
                    raise _Replace("stalled: the probe went unanswered", make_before_break=False)
                probe_sent_at = now
                await self._bucket.take()
                probe = {"method": "LIST_SUBSCRIPTIONS", "id": next(self._request_ids)}
                await ws.send_str(orjson.dumps(probe).decode())
                continue
            try:
                async with asyncio.timeout(min(quiet_since + stall - now, age_left)):
                    while True:
                        self._handle(await ws.receive())
                        if not self.wanted and not self.subscribed:
                            return
            except TimeoutError:
                continue

    def _handle(self, message: aiohttp.WSMessage) -> bool:
        """Act on one upstream message; True if it was a frame (the socket is alive)."""
        feed = self.feed
        if message.type in _DATA:
            received_at = time.time()
            self.last_frame_at = time.monotonic()
            feed.frames += 1
            try:
                frame = parse_frame(message.data, received_at)
            except MalformedFrame as exc:
                feed.malformed += 1
                self._log.warning(
                    "feed.malformed_frame", error=str(exc), frame=_excerpt(message.data)
                )
                return True
            if isinstance(frame, BookUpdate):
                feed.on_update(frame)
            elif isinstance(frame, Response):
                if frame.error is not None:
                    self._log.error("feed.request_refused", id=frame.id, error=frame.error)
            elif isinstance(frame, ServerShutdown):
                raise _Replace("serverShutdown", make_before_break=True)
            return True
        if message.type in _ENDED:
            raise ConnectionError(f"upstream closed the connection ({message.extra})")
        return False

    async def _hand_over(
        self, old: aiohttp.ClientWebSocketResponse, new: aiohttp.ClientWebSocketResponse
    ) -> None:
        """Keep reading the old socket until the new one carries everything, then close it.

        Streams that did not fit in the new socket's URL are subscribed on it first; the old
        socket is read until the new one has answered that request (or, with nothing to
        subscribe, has delivered anything at all). What the new socket sends meanwhile is
        held and handled after, in its order. Frames both sockets carry are skipped
        downstream by their update id.
        """
        awaited = await self._subscribe_rest(new)
        held: list[aiohttp.WSMessage] = []

        async def until_ready() -> None:
            while True:
                message = await new.receive()
                held.append(message)
                if message.type is not aiohttp.WSMsgType.TEXT or awaited is None:
                    return  # the first message, or the socket closed: _handle will say
                try:
                    answer = parse_frame(message.data, 0.0)
                except MalformedFrame:
                    continue
                if isinstance(answer, Response) and answer.id == awaited:
                    return

        ready = asyncio.create_task(until_ready())
        pending: asyncio.Task[aiohttp.WSMessage] | None = None
        try:
            async with asyncio.timeout(HANDOVER_MAX_S):
                while not ready.done():
                    pending = asyncio.create_task(old.receive())
                    await asyncio.wait({ready, pending}, return_when=asyncio.FIRST_COMPLETED)
                    if not pending.done():
                        pending.cancel()
                        await asyncio.gather(pending, return_exceptions=True)
                        break
                    try:
                        self._handle(pending.result())
                    except (_Replace, ConnectionError):
                        break  # the old socket is going anyway
            # Frames the old socket was sent before the new one took over may still be on
            # their way: read them for a moment too.
            async with asyncio.timeout(HANDOVER_DRAIN_S):
                while not old.closed:
                    self._handle(await old.receive())
        except (TimeoutError, _Replace, ConnectionError):
            pass  # done with the old socket, however it ended
        finally:
            # Never leave a reader behind (also when this task is cancelled): aiohttp allows
            # one receive() per socket at a time.
            for task in (ready, pending):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(
                *(t for t in (ready, pending) if t is not None), return_exceptions=True
            )
        await self._close(old)
        for message in held:
            self._handle(message)

    async def _subscribe_rest(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """SUBSCRIBE what `wanted` has beyond the socket's URL; the last request id, if any."""
        rest = sorted(self.wanted - self.subscribed)
        last_id = None
        for start in range(0, len(rest), MAX_PARAMS_PER_REQUEST):
            batch = rest[start : start + MAX_PARAMS_PER_REQUEST]
            await self._bucket.take()
            last_id = next(self._request_ids)
            request = {"method": "SUBSCRIBE", "params": batch, "id": last_id}
            await ws.send_str(orjson.dumps(request).decode())
            self.subscribed.update(batch)
        return last_id

    async def _send_changes(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Bring the socket's subscriptions to `wanted`, batched and rate-limited."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            for method, streams in (
                ("UNSUBSCRIBE", sorted(self.subscribed - self.wanted)),
                ("SUBSCRIBE", sorted(self.wanted - self.subscribed)),
            ):
                for start in range(0, len(streams), MAX_PARAMS_PER_REQUEST):
                    batch = streams[start : start + MAX_PARAMS_PER_REQUEST]
                    await self._bucket.take()
                    request = {"method": method, "params": batch, "id": next(self._request_ids)}
                    await ws.send_str(orjson.dumps(request).decode())
                    if method == "SUBSCRIBE":
                        self.subscribed.update(batch)
                    else:
                        self.subscribed.difference_update(batch)
                    self._log.info("feed.request", method=method, streams=batch)

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "id": self.id,
            "status": self.status,
            "streams": sorted(self.subscribed),
            "reconnects": self.reconnects,
            "age_s": None if self.connected_at is None else round(now - self.connected_at, 3),
            "last_frame_age_s": None
            if self.last_frame_at is None
            else round(now - self.last_frame_at, 3),
        }


class BinanceFeed:
    def __init__(
        self,
        base_url: str,
        kind: StreamKind,
        on_update: Callable[[BookUpdate], None],
        on_stream_lost: Callable[[set[str]], None] | None = None,
        *,
        unsubscribe_delay_s: float = 5.0,
        stall_timeout_s: float = 10.0,
        max_connection_age_s: float = 23.5 * 3600,
        max_streams_per_connection: int = 1024,
        max_messages_per_second: float = 4,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.kind = kind
        self.on_update = on_update
        self.on_stream_lost = on_stream_lost
        self.unsubscribe_delay_s = unsubscribe_delay_s
        self.stall_timeout_s = stall_timeout_s
        self.max_connection_age_s = max_connection_age_s
        self.max_streams_per_connection = max_streams_per_connection
        self.max_messages_per_second = max_messages_per_second
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._own_session = session is None
        self._session = session
        self._connections: list[_Connection] = []
        self._by_stream: dict[str, _Connection] = {}
        self._pending_release: dict[str, asyncio.TimerHandle] = {}
        self.frames = 0
        self.malformed = 0
        self.reconnects = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "BinanceFeed.start() was not awaited"
        return self._session

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for handle in self._pending_release.values():
            handle.cancel()
        self._pending_release.clear()
        await asyncio.gather(*(connection.stop() for connection in self._connections))
        self._connections.clear()
        if self._own_session and self._session is not None:
            await self._session.close()

    def backoff_delay(self, failures: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter"

    def acquire(self, symbol: str) -> None:
        """Someone needs `symbol`: subscribe now, or keep a pending unsubscribe from firing."""
        handle = self._pending_release.pop(symbol, None)
        if handle is not None:
            handle.cancel()
        stream = self.kind.stream_name(symbol)
        if stream in self._by_stream:
            return
        connection = next((c for c in self._connections if c.room > 0), None)
        if connection is None:
            connection = _Connection(self)
            self._connections.append(connection)
            connection.start()
        connection.want(stream)
        self._by_stream[stream] = connection

    def release(self, symbol: str) -> None:
        """Nobody needs `symbol` any more: unsubscribe after `unsubscribe_delay_s`."""
        if self.kind.stream_name(symbol) not in self._by_stream:
            return
        old = self._pending_release.pop(symbol, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._pending_release[symbol] = loop.call_later(
            self.unsubscribe_delay_s, self._unsubscribe, symbol
        )

    def _unsubscribe(self, symbol: str) -> None:
        self._pending_release.pop(symbol, None)
        connection = self._by_stream.pop(self.kind.stream_name(symbol), None)
        if connection is not None:
            connection.unwant(self.kind.stream_name(symbol))
            if self.on_stream_lost is not None:
                self.on_stream_lost({symbol})

    def state(self) -> dict[str, Any]:
        return {
            "url": self.base_url,
            "stream": self.kind.value,
            "connected": any(c.status == "connected" for c in self._connections),
            "connections": [c.state() for c in self._connections],
            "frames": self.frames,
            "malformed": self.malformed,
            "reconnects": self.reconnects,
        }
