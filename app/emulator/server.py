"""A Binance market-data websocket emulator, for tests, benchmarks and the offline demo.

It speaks the protocol of Binance's spot docs (web-socket-streams.md): raw `/ws/<stream>`,
combined `/stream?streams=a/b`, live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS with
`{"result": null, "id": n}` answers and `{"error": {"code", "msg"}, "id": n}` refusals, the
5 incoming messages per second and 1024 streams per connection limits, and the
`serverShutdown` event. Stream names are matched exactly, as Binance does: a misspelled
stream (`btcusdt@bookticker`) or an unknown symbol is accepted and simply never sends.

Publishing never blocks: each connection has an outgoing queue drained by its own task.

It also answers the REST `GET /api/v3/exchangeInfo` (rest-api.md) from `exchange_symbols`:
BTCUSDT, ETHUSDT, BNBUSDT and LTCBTC to start with (see `default_exchange_symbols`), any
other entry a test registers, and `-1121 Invalid symbol.` for the rest, with faults on
demand (`exchange_info_fault`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from app.emulator.exchange_info import (
    ExchangeInfoFault,
    default_exchange_symbols,
    exchange_info_response,
)

Quote = tuple[str, str] | Sequence[str]


def _text_frame(payload: bytes) -> bytes:
    """One unmasked (server to client) websocket text frame, RFC 6455 section 5.2."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


class _Connection:
    _ids = itertools.count(1)

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, combined: bool) -> None:
        self.id = next(self._ids)
        self.ws = ws
        self.request = request
        self.combined = combined
        self.streams: set[str] = set()
        self.outgoing: deque[str] = deque()
        self.wake = asyncio.Event()
        self.message_times: deque[float] = deque()

    def push(self, frame: str) -> None:
        self.outgoing.append(frame)
        self.wake.set()

    async def drain(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outgoing and not self.ws.closed:
                await self.ws.send_str(self.outgoing.popleft())


class BinanceEmulator:
    def __init__(
        self, *, max_streams_per_connection: int = 1024, max_messages_per_second: int = 5
    ) -> None:
        self.max_streams_per_connection = max_streams_per_connection
        self.max_messages_per_second = max_messages_per_second
        self.connections: set[_Connection] = set()
        self._subscribers: dict[str, set[_Connection]] = defaultdict(set)
        self._changed = asyncio.Condition()
        self._update_ids: dict[str, int] = defaultdict(lambda: 1000)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.stalled = False
        self.connections_opened = 0
        self.requests: list[tuple[int, dict[str, Any]]] = []  # (connection id, request)
        self.closed_for_rate = 0
        self.rest_url = ""
        # GET /api/v3/exchangeInfo: the symbols listed, by name, as Binance's symbols[] entries.
        self.exchange_symbols: dict[str, dict[str, Any]] = default_exchange_symbols()
        self.exchange_info_requests: list[str] = []  # each request's query string
        # On: a symbol not in exchange_symbols is listed with permissive filters (made-up
        # symbols in tests and the demo); off: -1121 "Invalid symbol.", as Binance answers.
        self.list_every_symbol = False
        self._exchange_info_fault: ExchangeInfoFault | None = None
        self._exchange_info_open = asyncio.Event()
        self._exchange_info_open.set()

    # -- lifetime -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/ws", self._raw)
        app.router.add_get("/ws/{stream}", self._raw)
        app.router.add_get("/stream", self._combined)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]  # the port chosen when asked for 0
        self.base_url = f"ws://{host}:{bound}"
        self.rest_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        for connection in list(self.connections):
            await connection.ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- introspection --------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    @property
    def subscriptions(self) -> dict[int, set[str]]:
        return {c.id: set(c.streams) for c in self.connections}

    def subscribed(self, stream: str) -> bool:
        return bool(self._subscribers.get(stream))

    async def _wait(self, predicate: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_subscribed(self, stream: str, timeout: float = 5.0) -> None:
        await self._wait(lambda: self.subscribed(stream), timeout)

    async def wait_unsubscribed(self, stream: str, timeout: float = 5.0) -> None:
        await self._wait(lambda: not self.subscribed(stream), timeout)

    async def wait_connections(self, count: int, timeout: float = 5.0) -> None:
        await self._wait(lambda: self.connections_opened >= count, timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- publishing -----------------------------------------------------------------------

    def publish(self, stream: str, payload: dict[str, Any]) -> int:
        """Queue `payload` for every connection subscribed to exactly `stream`."""
        subscribers = self._subscribers.get(stream)
        if not subscribers or self.stalled:
            return 0
        raw = combined = None
        for connection in subscribers:
            if connection.combined:
                combined = combined or orjson.dumps({"stream": stream, "data": payload}).decode()
                connection.push(combined)
            else:
                raw = raw or orjson.dumps(payload).decode()
                connection.push(raw)
        return len(subscribers)

    async def blast(self, stream: str, payloads: Sequence[dict[str, Any]]) -> int:
        """Send `payloads` to every subscriber of `stream` as fast as the kernel takes them.

        For benchmarks, where the sender must outrun any consumer: the frames are encoded
        up front, joined, and written straight to each socket's transport in one call
        (aiohttp's writer costs a few microseconds per frame, as much as a consumer).
        Returns once every byte has left our buffers.
        """
        subscribers = [c for c in self._subscribers.get(stream, ()) if not c.ws.closed]
        blobs: dict[bool, bytes] = {}
        for combined in {c.combined for c in subscribers}:
            blobs[combined] = b"".join(
                _text_frame(orjson.dumps({"stream": stream, "data": p} if combined else p))
                for p in payloads
            )
        transports = []
        for connection in subscribers:
            # What was queued before goes first; neither the queue nor (below) a transport's
            # buffer signals when it empties, so both are polled.
            while connection.outgoing:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            transport = connection.request.transport
            if transport is not None:
                transport.write(blobs[connection.combined])
                transports.append(transport)
        while any(t.get_write_buffer_size() and not t.is_closing() for t in transports):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        return len(transports)

    def next_update_id(self, symbol: str) -> int:
        self._update_ids[symbol.upper()] += 1
        return self._update_ids[symbol.upper()]

    def book_ticker(
        self,
        symbol: str,
        bid: str,
        bid_qty: str,
        ask: str,
        ask_qty: str,
        update_id: int | None = None,
    ) -> int:
        uid = self.next_update_id(symbol) if update_id is None else update_id
        payload = {"u": uid, "s": symbol.upper(), "b": bid, "B": bid_qty, "a": ask, "A": ask_qty}
        return self.publish(f"{symbol.lower()}@bookTicker", payload)

    def depth(
        self,
        symbol: str,
        bids: Iterable[Quote],
        asks: Iterable[Quote],
        levels: int = 5,
        update_id: int | None = None,
    ) -> int:
        uid = self.next_update_id(symbol) if update_id is None else update_id
        payload = {
            "lastUpdateId": uid,
            "bids": [list(level) for level in bids][:levels],
            "asks": [list(level) for level in asks][:levels],
        }
        return self.publish(f"{symbol.lower()}@depth{levels}@100ms", payload)

    # -- faults ---------------------------------------------------------------------------

    async def drop_connections(self) -> None:
        """Cut every connection abruptly, with no close handshake."""
        for connection in list(self.connections):
            transport = connection.request.transport
            if transport is not None:
                transport.abort()

    def stall(self, on: bool = True) -> None:
        """Stay connected but send nothing and answer nothing (or resume)."""
        self.stalled = on

    async def server_shutdown(self) -> None:
        """Announce `serverShutdown` on every connection, then close them."""
        event = {"e": "serverShutdown", "E": int(time.time() * 1000)}
        for connection in list(self.connections):
            message = {"stream": "!serverShutdown", "data": event} if connection.combined else event
            connection.push(orjson.dumps(message).decode())
        await asyncio.sleep(0)
        for connection in list(self.connections):
            await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # -- exchange info (REST) -------------------------------------------------------------

    def register_symbol(self, entry: dict[str, Any]) -> None:
        """List `entry` (a symbols[] entry, e.g. from `symbol_entry`) under its symbol,
        replacing what was listed; it is served as given, malformed values included."""
        self.exchange_symbols[str(entry["symbol"])] = entry

    def unlist_symbol(self, symbol: str) -> None:
        self.exchange_symbols.pop(symbol, None)

    def exchange_info_fault(self, fault: ExchangeInfoFault | None) -> None:
        """Make exchangeInfo fail: "error" answers 500, "rate_limited" 429 with Retry-After,
        "reset" drops the connection without an answer, "stall" never answers; None serves
        again."""
        self._exchange_info_fault = fault

    def hold_exchange_info(self, held: bool = True) -> None:
        """Hold every exchangeInfo answer until released (so that requests overlap)."""
        if held:
            self._exchange_info_open.clear()
        else:
            self._exchange_info_open.set()

    async def _exchange_info(self, request: web.Request) -> web.StreamResponse:
        self.exchange_info_requests.append(request.query_string)
        await self._notify()
        await self._exchange_info_open.wait()
        fault = self._exchange_info_fault
        if fault == "stall":
            await asyncio.Event().wait()  # until the client gives up and the server stops
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never written: the connection is gone
        if fault == "rate_limited":
            body = {
                "code": -1003,
                "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
            }
            return web.json_response(body, status=429, headers={"Retry-After": "30"})
        if fault == "error":
            return web.json_response(
                {"code": -1000, "msg": "An unknown error occurred."}, status=500
            )
        status, body = exchange_info_response(
            self.exchange_symbols, request.query, list_every_symbol=self.list_every_symbol
        )
        return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())

    async def wait_exchange_info_requests(self, count: int, timeout: float = 5.0) -> None:
        await self._wait(lambda: len(self.exchange_info_requests) >= count, timeout)

    # -- protocol -------------------------------------------------------------------------

    async def _raw(self, request: web.Request) -> web.WebSocketResponse:
        stream = request.match_info.get("stream")
        return await self._serve(request, [stream] if stream else [], combined=False)

    async def _combined(self, request: web.Request) -> web.WebSocketResponse:
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve(request, streams, combined=True)

    async def _serve(
        self, request: web.Request, streams: list[str], *, combined: bool
    ) -> web.WebSocketResponse:
        if len(streams) > self.max_streams_per_connection:
            raise web.HTTPBadRequest(text="too many streams")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(ws, request, combined)
        self.connections.add(connection)
        self.connections_opened += 1
        self._subscribe(connection, streams)
        await self._notify()
        drain = asyncio.create_task(connection.drain())
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    if not self._within_rate(connection):
                        self.closed_for_rate += 1
                        await ws.close(
                            code=WSCloseCode.POLICY_VIOLATION, message=b"Too many requests"
                        )
                        break
                    await self._request(connection, message.data)
        finally:
            drain.cancel()
            self.connections.discard(connection)
            for stream in connection.streams:
                self._subscribers[stream].discard(connection)
                if not self._subscribers[stream]:
                    del self._subscribers[stream]
            await self._notify()
        return ws

    def _within_rate(self, connection: _Connection) -> bool:
        now = time.monotonic()
        times = connection.message_times
        times.append(now)
        while times and now - times[0] >= 1.0:
            times.popleft()
        return len(times) <= self.max_messages_per_second

    def _subscribe(self, connection: _Connection, streams: Iterable[str]) -> None:
        for stream in streams:
            connection.streams.add(stream)
            self._subscribers[stream].add(connection)

    async def _request(self, connection: _Connection, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            if self.stalled:
                return
            self._answer(
                connection, None, error=(3, "Invalid JSON: expected value at line 1 column 1")
            )
            return
        if not isinstance(request, dict):
            self._answer(connection, None, error=(2, "Invalid request: expected an object"))
            return
        self.requests.append((connection.id, request))
        if self.stalled:
            return  # heard, never answered
        request_id, method, params = request.get("id"), request.get("method"), request.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._answer(
                    connection,
                    request_id,
                    error=(2, "Invalid request: params must be a list of stream names"),
                )
                return
            if method == "SUBSCRIBE":
                if len(connection.streams | set(params)) > self.max_streams_per_connection:
                    self._answer(
                        connection,
                        request_id,
                        error=(2, "Invalid request: too many streams on this connection"),
                    )
                    return
                self._subscribe(connection, params)
            else:
                for stream in params:
                    connection.streams.discard(stream)
                    self._subscribers[stream].discard(connection)
                    if not self._subscribers[stream]:
                        del self._subscribers[stream]
            self._answer(connection, request_id, result=None)
            await self._notify()
        elif method == "LIST_SUBSCRIPTIONS":
            self._answer(connection, request_id, result=sorted(connection.streams))
        elif method is None:
            self._answer(
                connection, request_id, error=(2, "Invalid request: missing field `method`")
            )
        else:
            self._answer(
                connection, request_id,
                error=(2, f"Invalid request: unknown variant {method}, expected one of "
                          "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`"),
            )  # fmt: skip

    @staticmethod
    def _answer(
        connection: _Connection,
        request_id: Any,
        *,
        result: Any = None,
        error: tuple[int, str] | None = None,
    ) -> None:
        if error is None:
            message: dict[str, Any] = {"result": result, "id": request_id}
        else:
            message = {"error": {"code": error[0], "msg": error[1]}, "id": request_id}
        connection.push(orjson.dumps(message).decode())
