"""The Binance market-data client: one shared websocket for every symbol.

Streams are added and removed live with SUBSCRIBE/UNSUBSCRIBE on the combined `/stream`
endpoint (partial-depth frames carry no symbol; the combined wrapper names the stream).
Binance allows 5 incoming messages per second per connection, pings and pongs included,
so requests are batched and sent through a sliding-window limit below that; past 1024 streams a
connection is full and another one is opened.

A connection is replaced when it drops (exponential backoff with jitter), when it goes
silent (nothing received for `stall_timeout_s`, a LIST_SUBSCRIPTIONS probe sent halfway
through going unanswered), when a frame is over MAX_FRAME_BYTES, when Binance announces
`serverShutdown`, and before Binance's 24-hour cut. The last two are make-before-break:
the new socket is open and streaming before the old one is closed, so no gap is forced.

A connection's task never ends by itself: a frame that does not parse is counted and
skipped, an exception from a callback (`on_update`, `on_stream_lost`) is counted, logged
and the socket goes on, and any other error restarts the connection after a backoff.

The websocket client is picows: it calls back per frame as it parses the socket's bytes
(`_Listener.on_ws_frame`), so a frame is handled with no task woken for it; the
connection's task only wakes for deadlines, its socket's end and subscription changes.
(bench/market.py measured picows' bare receive at ~1.3-1.5x aiohttp's.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson
import picows
import structlog
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from app.adapters.binance.parsing import MalformedFrame, Response, ServerShutdown, parse_frame
from app.backoff import Backoff
from app.clock import rfc3339
from app.core.domain import BookTicker, BookUpdate, StreamKind
from app.ratelimit import SlidingWindowLimiter

log = structlog.get_logger(__name__)

MAX_URL_STREAMS_CHARS = 2000  # streams named in the URL; the rest go by SUBSCRIBE
MAX_PARAMS_PER_REQUEST = 200
CONNECT_TIMEOUT_S = 10.0  # TCP, TLS and the websocket handshake
HANDOVER_MAX_S = 5.0  # how long an old socket is read while its replacement starts
HANDOVER_DRAIN_S = 0.25  # and read on after, for frames that were already on their way
# Binance's largest frames (depth20) are a few KB; a frame over this closes the socket
# with 1009 and the connection is replaced.
MAX_FRAME_BYTES = 1 << 20
LOG_REPEAT_S = 10.0  # a repeated complaint (malformed frames, failing callbacks) at most this often

_NETWORK_ERRORS = (picows.WSError, OSError, TimeoutError, ConnectionError)


def _excerpt(data: bytes | str) -> str:
    if isinstance(data, bytes):
        return data[:200].decode(errors="replace")
    return data[:200]


def _plain(exc: BaseException) -> str:
    """What went wrong, in the exception's own words (its type if it has none)."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else f"{text[:297]}..."


def _described(exc: BaseException) -> str:
    """`RuntimeError: what it said`: for errors that are bugs, where the type matters."""
    text = str(exc)
    return _plain(exc) if not text else f"{type(exc).__name__}: {_plain(exc)}"


_TEXT = WSMsgType.TEXT
_wall_clock, _monotonic = time.time, time.monotonic  # bound once: read on every frame


class _Listener(WSListener):  # type: ignore[misc]
    """picows' callbacks for one socket: each data frame goes to `sink` as it is parsed,
    synchronously (no task is woken per frame); the socket's end is kept for `_Socket`.

    Pings are answered by picows (enable_auto_pong); pongs and pings are not frames for
    the stall check, as before. A message split over several frames is put together.
    """

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        loop = asyncio.get_running_loop()
        # Why the socket is to be left (its end, or what a frame raised); set once.
        self.ended: asyncio.Future[BaseException] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()  # it can deliver no more
        self._parts: list[bytes] | None = None

    def end(self, why: BaseException) -> None:
        if not self.ended.done():
            self.ended.set_result(why)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # The usual frame first, with as little as possible before the sink.
        if frame.msg_type is _TEXT and frame.fin and frame.payload_size <= MAX_FRAME_BYTES:
            try:
                self.sink(frame.get_payload_as_bytes())
            except Exception as exc:  # _Replace, or a bug: the connection decides
                self.end(exc)
            return
        self._other_frame(transport, frame)

    def _other_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if frame.payload_size > MAX_FRAME_BYTES:
                # picows refuses it (1009) but may still hand it over before it disconnects
                self._too_big(transport, f"{frame.payload_size} > {MAX_FRAME_BYTES}")
                return
            if frame.fin:
                data = frame.get_payload_as_bytes()
            else:
                self._parts = [frame.get_payload_as_bytes()]
                return
        elif kind is WSMsgType.CONTINUATION:
            if self._parts is None:
                return  # picows checks the framing; nothing of ours to continue
            self._parts.append(frame.get_payload_as_bytes())
            if sum(map(len, self._parts)) > MAX_FRAME_BYTES:
                self._too_big(transport, f"a message over {MAX_FRAME_BYTES} bytes")
                return
            if not frame.fin:
                return
            data, self._parts = b"".join(self._parts), None
        elif kind is WSMsgType.CLOSE:
            code, reason = frame.get_close_code(), frame.get_close_message()
            said = f": {reason.decode(errors='replace')}" if reason else ""
            self.end(ConnectionError(f"upstream closed the connection (code {code.value}{said})"))
            if not self.gone.done():
                self.gone.set_result(None)
            transport.send_close(code)
            transport.disconnect()
            return
        else:
            return
        self.deliver(data)

    def _too_big(self, transport: WSTransport, what: str) -> None:
        self._parts = None
        self.sink = _ignore  # nothing more from this socket
        self.end(ConnectionError(_too_big(what)))
        transport.send_close(WSCloseCode.MESSAGE_TOO_BIG)
        transport.disconnect()

    def deliver(self, data: bytes) -> None:
        try:
            self.sink(data)
        except Exception as exc:  # _Replace, or a bug: the connection decides
            self.end(exc)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.end(ConnectionError("the connection was closed"))
        if not self.gone.done():
            self.gone.set_result(None)


class _Holder:
    """A new socket's sink while the old one is still read (make-before-break): keeps its
    frames, and is `ready` once the new socket carries everything (see `_hand_over`)."""

    _UNKNOWN = -1

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._awaited: int | None = self._UNKNOWN  # the SUBSCRIBE whose answer is awaited

    def __call__(self, data: bytes) -> None:
        self.frames.append(data)
        if not self.ready.done() and self._answers(data):
            self.ready.set_result(None)

    def expect(self, awaited: int | None) -> None:
        """Ready at the answer to request `awaited`; None: at the first frame."""
        self._awaited = awaited
        if not self.ready.done() and any(self._answers(data) for data in self.frames):
            self.ready.set_result(None)

    def _answers(self, data: bytes) -> bool:
        if self._awaited is None:
            return True
        if self._awaited == self._UNKNOWN:
            return False
        try:
            answer = parse_frame(data, 0.0)
        except MalformedFrame:
            return False
        return isinstance(answer, Response) and answer.id == self._awaited


def _ignore(data: bytes) -> None:
    pass


def _too_big(what: str) -> str:
    return f"frame too big: {what} (limit {MAX_FRAME_BYTES} bytes; closed with 1009)"


class _Socket:
    """One upstream websocket (picows) and what ended it, if it has ended."""

    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self.transport = transport
        self.listener = listener

    @property
    def closed(self) -> bool:
        return bool(self.transport.is_disconnected)

    async def send_str(self, text: str) -> None:
        self.transport.send(WSMsgType.TEXT, text.encode())

    async def wait(self) -> None:
        """Until the socket ends: raises why (ConnectionError, or what a frame raised)."""
        why = await asyncio.shield(self.listener.ended)
        if isinstance(why, ConnectionError) and why.args == ("the connection was closed",):
            try:  # picows keeps its own reason (a protocol error, an oversize frame)
                await asyncio.wait_for(self.transport.wait_disconnected(), 2.0)
            except picows.WSProtocolError as exc:
                if exc.code == WSCloseCode.MESSAGE_TOO_BIG:
                    raise ConnectionError(_too_big(str(exc))) from exc
                raise ConnectionError(f"websocket error: {_plain(exc)}") from exc
            except Exception as exc:
                raise ConnectionError(f"websocket error: {_described(exc)}") from exc
        raise why

    async def close(self) -> None:
        """Close it; nothing it still receives is handled (as a closed socket is not read)."""
        self.listener.sink = _ignore
        self.listener.end(ConnectionError("closed by us"))
        self.transport.send_close(WSCloseCode.OK)
        self.transport.disconnect()
        await self.transport.wait_disconnected()


class _LogThrottle:
    """Say a repeated complaint at once, then at most once per LOG_REPEAT_S with a count."""

    def __init__(self) -> None:
        self._limit = SlidingWindowLimiter(1, LOG_REPEAT_S)
        self._held = 0

    def allow(self) -> int | None:
        """How many were held back since the last line, if a line may be written now."""
        if self._limit.try_take():
            self._held += 1
            return None
        held, self._held = self._held, 0
        return held


class _Replace(Exception):
    """Leave this socket for a new one, opened before (or after) this one is closed."""

    def __init__(self, why: str, *, make_before_break: bool) -> None:
        super().__init__(why)
        self.make_before_break = make_before_break


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
        # The current outage: time.time() of its first failure, and failures since.
        self.down_since: float | None = None
        self.failures = 0
        self._said_unreachable = False
        self._changed = asyncio.Event()
        self._ws: _Socket | None = None
        # Binance counts a plain sliding window (a token bucket would let its burst plus its
        # rate through in one window). A little over a second: our clock and Binance's
        # count need not agree exactly.
        self._bucket = SlidingWindowLimiter(max(1, int(feed.max_messages_per_second)), 1.1)
        self._request_ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._probe_sent_at: float | None = None  # time.monotonic() the last probe left
        self._wake: asyncio.Future[None] | None = None  # set to wake _receive early
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
        """Keep the socket going for as long as the connection exists.

        Network failures are handled inside `_keep_connected`; anything else escaping it is
        a bug. It is logged, the socket is dropped and the loop starts over after a backoff:
        the task never ends while the feed runs, so no symbol is left silently without data.
        """
        crashes = 0
        while True:
            started = time.monotonic()
            try:
                await self._keep_connected()
            except Exception as exc:
                if time.monotonic() - started > 2 * self.feed.backoff_max_s:
                    crashes = 0  # it ran well for a while: start the backoff over
                crashes += 1
                self.status = "reconnecting"
                ws, self._ws = self._ws, None
                await self._close(ws)
                self._mark_down()
                self._lost()
                delay = self.feed.backoff_delay(crashes)
                self._log.error(
                    "feed.connection_crashed",
                    error=_described(exc),
                    retry_in=round(delay, 3),
                    exc_info=exc,
                )
                self.feed.reconnects += 1
                self.reconnects += 1
                await asyncio.sleep(delay)

    async def _keep_connected(self) -> None:
        while True:
            if not self.wanted:
                self.status = "idle"
                # Nothing to carry: not an outage.
                self.down_since, self.failures, self._said_unreachable = None, 0, False
                ws, self._ws = self._ws, None
                await self._close(ws)
                self._changed.clear()
                await self._changed.wait()
                continue
            ws = self._ws
            if ws is None:
                self.status = "connecting" if self.down_since is None else "reconnecting"
                try:
                    ws = self._ws = await self._open()
                except _NETWORK_ERRORS as exc:
                    await self._failed(exc, connecting=True)
                    continue
            try:
                await self._serve(ws)
            except _Replace as replace:
                self.reconnects += 1
                self.feed.reconnects += 1
                self._log.info("feed.replacing_connection", why=str(replace))
                if replace.make_before_break:
                    await self._replace_before_break(ws)
                else:
                    self._ws = None
                    await self._close(ws)
                    self._mark_down()
                    self._lost()
            except _NETWORK_ERRORS as exc:
                self._ws = None
                await self._close(ws)
                self._mark_down()
                self._lost()
                await self._failed(exc, connecting=False)

    async def _replace_before_break(self, old: _Socket) -> None:
        holder = _Holder()
        try:
            new = await self._open(holder)
        except _NETWORK_ERRORS as exc:
            self._log.warning("feed.replacement_failed", error=_plain(exc))
            self._ws = None
            await self._close(old)
            self._mark_down()
            self._lost()
            return
        self._ws = new
        try:
            await self._hand_over(old, new, holder)
        except (_Replace, ConnectionError) as exc:
            self._log.warning("feed.replacement_closed", error=_plain(exc))

    def _mark_down(self) -> None:
        if self.down_since is None:
            self.down_since = time.time()

    async def _failed(self, exc: BaseException, *, connecting: bool) -> None:
        """A network failure: say it (once per outage if upstream is unreachable), back off."""
        self.failures += 1
        self.status = "reconnecting"
        self._mark_down()
        self.feed.reconnects += 1
        self.reconnects += 1
        delay = self.feed.backoff_delay(self.failures)
        if not connecting:
            self._log.warning("feed.connection_lost", error=_plain(exc), retry_in=round(delay, 3))
        elif not self._said_unreachable:
            self._said_unreachable = True
            self._log.warning(
                "feed.unreachable",
                error=f"cannot reach {self.feed.base_url} ({_plain(exc)}); retrying with "
                "backoff. No internet? `python -m app demo` runs offline",
            )
        else:
            self._log.debug(
                "feed.still_unreachable", failures=self.failures, retry_in=round(delay, 3)
            )
        await asyncio.sleep(delay)

    async def _open(self, sink: Callable[[bytes], None] | None = None) -> _Socket:
        """Connect; each data frame then goes to `sink` (by default: handled at once)."""
        streams = sorted(self.wanted)
        in_url: list[str] = []
        length = 0
        for stream in streams:
            length += len(stream) + 1
            if length > MAX_URL_STREAMS_CHARS:
                break
            in_url.append(stream)
        url = f"{self.feed.base_url}/stream?streams={'/'.join(in_url)}"
        # Frames that come with the handshake wait until the connection is set up.
        early: list[bytes] = []
        listener_sink = early.append if sink is None else sink
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            transport, listener = await picows.ws_connect(
                lambda: _Listener(listener_sink),
                url,
                max_frame_size=MAX_FRAME_BYTES,
                enable_auto_pong=True,
                logger_name="app.adapters.binance.picows",
            )
        assert isinstance(listener, _Listener)
        ws = _Socket(transport, listener)
        self.subscribed = set(in_url)
        self.connected_at = time.monotonic()
        self.last_frame_at = self.connected_at
        self.status = "connected"
        self._changed.set()  # the rest of `wanted`, if any, goes by SUBSCRIBE
        if self.down_since is None:
            self._log.info("feed.connected", streams=len(in_url), url=self.feed.base_url)
        else:
            self._log.info(
                "feed.reconnected",
                streams=len(in_url),
                url=self.feed.base_url,
                down_for_s=round(time.time() - self.down_since, 3),
                failures=self.failures,
            )
        self.down_since, self.failures, self._said_unreachable = None, 0, False
        if sink is None:
            listener.sink = self._handle_data
            for data in early:
                listener.deliver(data)
        return ws

    async def _close(self, ws: _Socket | None) -> None:
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    def _lost(self) -> None:
        """Quotes from this socket no longer count as current for its symbols."""
        lost = {stream.partition("@")[0].upper() for stream in self.subscribed}
        self.subscribed = set()
        if lost:
            self.feed._notify_lost(lost)

    async def _serve(self, ws: _Socket) -> None:
        """Read the socket while another task keeps its subscriptions in step with `wanted`.

        Returns or raises when the socket must be left; if the sender fails, so does this.
        """
        sender = asyncio.create_task(self._send_changes(ws), name=f"binance-sender-{self.id}")
        receiver = asyncio.create_task(self._receive(ws), name=f"binance-receiver-{self.id}")
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                receiver.result()
            else:
                sender.result()
        finally:
            for task in (sender, receiver, self._probe):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(
                *(t for t in (sender, receiver, self._probe) if t is not None),
                return_exceptions=True,
            )
            self._probe = None

    async def _receive(self, ws: _Socket) -> None:
        """Read frames until the socket must be left.

        Silence: after `stall_timeout_s / 2` with nothing received a LIST_SUBSCRIPTIONS
        probe is sent (a live socket answers it), and at `stall_timeout_s` the socket is
        replaced. (A probe held back by the rate limit gets its half timeout from when it
        is sent.) Frames are handled by the socket's listener as they arrive; this task
        only wakes at a deadline (stall, connection age), when the socket ends, or when
        it no longer carries anything.
        """
        feed = self.feed
        stall = feed.stall_timeout_s
        probe_after = stall / 2
        probed_for: float | None = None  # the `last_frame_at` a probe was sent after
        while True:
            assert self.connected_at is not None and self.last_frame_at is not None
            now = time.monotonic()
            age_left = feed.max_connection_age_s - (now - self.connected_at)
            if age_left <= 0:
                raise _Replace("connection age limit", make_before_break=True)
            if not self.wanted and not self.subscribed:
                return  # everything unsubscribed: _run closes the idle socket
            last = self.last_frame_at
            if probed_for != last:  # nothing asked since the last frame
                if now - last >= probe_after:
                    probed_for = last
                    self._send_probe(ws, probe_after)
                    continue
                wake = last + probe_after
            elif self._probe is not None and not self._probe.done():
                wake = now + probe_after  # the probe waits for the rate limit: no verdict yet
            else:
                sent = self._probe_sent_at
                give_up = last + stall if sent is None else max(last + stall, sent + probe_after)
                if now >= give_up:
                    if await self._read_buffered(ws):
                        continue
                    raise _Replace(
                        f"stalled: nothing received for {now - last:.3g} s, probe unanswered",
                        make_before_break=False,
                    )
                wake = give_up
            # Frames are handled as they arrive (_Listener): this only waits for the
            # socket's end, the next deadline, or all its streams being unsubscribed.
            self._wake = asyncio.get_running_loop().create_future()
            ended = ws.listener.ended
            await asyncio.wait(
                (ended, self._wake), timeout=min(wake - now, age_left),
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            self._wake = None
            if ended.done():
                await ws.wait()  # raises why it ended

    async def _read_buffered(self, ws: _Socket) -> bool:
        """Handle what has arrived but was not read yet; False if there was nothing.

        A deadline and a frame can come due in the same loop iteration, the deadline
        first: before a socket is called silent, the loop runs once more so that what is
        already in the socket's buffer is read (and handled by the listener).
        """
        before = self.last_frame_at
        await asyncio.sleep(0)
        return self.last_frame_at != before

    def _send_probe(self, ws: _Socket, within_s: float) -> None:
        """Ask a quiet socket for its subscriptions (a live one answers), without waiting."""
        if self._probe is not None and not self._probe.done():
            return  # one already on its way (held by the rate limit)
        self._probe_sent_at = None

        async def probe() -> None:
            await self._bucket.take()
            request = {"method": "LIST_SUBSCRIPTIONS", "id": next(self._request_ids)}
            try:
                async with asyncio.timeout(within_s):  # a send that cannot leave: no verdict
                    await ws.send_str(orjson.dumps(request).decode())
            except _NETWORK_ERRORS as exc:  # the receive loop will see the socket end
                self._log.debug("feed.probe_failed", error=_plain(exc))
            else:
                self._probe_sent_at = time.monotonic()

        self._probe = asyncio.create_task(probe(), name=f"binance-probe-{self.id}")

    def _handle_data(self, data: bytes) -> None:
        """Act on one upstream data frame, as the socket's listener receives it."""
        received_at = _wall_clock()
        self.last_frame_at = _monotonic()
        feed = self.feed
        feed.frames += 1
        try:
            frame = parse_frame(data, received_at)
        except Exception as exc:  # MalformedFrame; anything else is a parser bug
            feed.malformed += 1
            held = feed._malformed_log.allow()
            if held is not None:
                self._log.warning(
                    "feed.malformed_frame",
                    error=str(exc) if isinstance(exc, MalformedFrame) else _described(exc),
                    frame=_excerpt(data),
                    held_back=held,
                )
            return
        if type(frame) is BookTicker or isinstance(frame, BookUpdate):
            try:
                feed.on_update(frame)
            except Exception as exc:  # the callback's bug: this frame only
                feed._callback_failed(
                    "on_update", exc, symbol=frame.symbol, update_id=frame.update_id
                )
        elif isinstance(frame, Response):
            if frame.error is not None:
                self._log.error("feed.request_refused", id=frame.id, error=frame.error)
        elif isinstance(frame, ServerShutdown):
            raise _Replace("serverShutdown", make_before_break=True)

    async def _hand_over(self, old: _Socket, new: _Socket, holder: _Holder) -> None:
        """Keep reading the old socket until the new one carries everything, then close it.

        Streams that did not fit in the new socket's URL are subscribed on it first; the old
        socket is read until the new one has answered that request (or, with nothing to
        subscribe, has delivered anything at all). What the new socket sends meanwhile is
        held (`holder`) and handled after, in its order. Frames both sockets carry are
        skipped downstream by their update id.
        """
        try:
            holder.expect(await self._subscribe_rest(new))
            await asyncio.wait(
                (holder.ready, new.listener.gone, old.listener.gone),
                timeout=HANDOVER_MAX_S, return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            # Frames the old socket was sent before the new one took over may still be on
            # their way: read them for a moment too.
            if not old.listener.gone.done():
                await asyncio.wait((old.listener.gone,), timeout=HANDOVER_DRAIN_S)
        finally:
            await self._close(old)
        held, holder.frames = holder.frames, []
        for data in held:
            self._handle_data(data)
        new.listener.sink = self._handle_data

    async def _subscribe_rest(self, ws: _Socket) -> int | None:
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

    async def _send_changes(self, ws: _Socket) -> None:
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
            wake = self._wake
            if not self.wanted and not self.subscribed and wake is not None and not wake.done():
                wake.set_result(None)  # nothing left to carry: _receive returns

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
            "down_since": _rfc3339(self.down_since),
            "failures": self.failures,
        }


def _rfc3339(at: float | None) -> str | None:
    return None if at is None else rfc3339(int(at * 1_000_000))


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
        self._backoff = Backoff(backoff_initial_s, backoff_max_s, jitter=True)
        self._connections: list[_Connection] = []
        self._by_stream: dict[str, _Connection] = {}
        self._pending_release: dict[str, asyncio.TimerHandle] = {}
        self.frames = 0
        self.malformed = 0
        self.reconnects = 0
        self.callback_errors = 0  # exceptions raised by on_update / on_stream_lost
        self._malformed_log = _LogThrottle()
        self._callback_log = _LogThrottle()

    async def start(self) -> None:
        """Nothing to set up before `acquire` (kept for the callers' start/stop pairing)."""

    async def stop(self) -> None:
        for handle in self._pending_release.values():
            handle.cancel()
        self._pending_release.clear()
        await asyncio.gather(*(connection.stop() for connection in self._connections))
        self._connections.clear()

    def backoff_delay(self, failures: int) -> float:
        """The delay before reconnecting after `failures` in a row ("equal jitter")."""
        return self._backoff.delay(failures)

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
            self._notify_lost({symbol})

    def _notify_lost(self, symbols: set[str]) -> None:
        if self.on_stream_lost is None:
            return
        try:
            self.on_stream_lost(symbols)
        except Exception as exc:  # the callback's bug: the feed goes on
            self._callback_failed("on_stream_lost", exc, symbols=sorted(symbols))

    def _callback_failed(self, callback: str, exc: Exception, **context: Any) -> None:
        self.callback_errors += 1
        held = self._callback_log.allow()
        if held is not None:
            log.error(
                "feed.callback_failed",
                callback=callback,
                error=_described(exc),
                held_back=held,
                **context,
            )

    def down_since(self, symbol: str | None = None) -> float | None:
        """When (time.time()) the current upstream outage began; None while connected.

        An outage begins at the first failure (a drop, a stall, a refused or failed
        connect) and ends when a socket is open again. With `symbol`: the outage of the
        connection carrying that symbol's stream (None if the symbol is not acquired);
        without: the earliest outage of any connection.
        """
        if symbol is not None:
            connection = self._by_stream.get(self.kind.stream_name(symbol))
            return None if connection is None else connection.down_since
        return min(
            (c.down_since for c in self._connections if c.down_since is not None), default=None
        )

    def state(self) -> dict[str, Any]:
        return {
            "url": self.base_url,
            "stream": self.kind.value,
            "connected": any(c.status == "connected" for c in self._connections),
            "down_since": _rfc3339(self.down_since()),
            "connections": [c.state() for c in self._connections],
            "frames": self.frames,
            "malformed": self.malformed,
            "callback_errors": self.callback_errors,
            "reconnects": self.reconnects,
        }
