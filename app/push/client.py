"""One websocket client's outgoing side: a bounded queue and its own writer task.

The producer (the hub) never waits for the socket, so a slow or stuck client delays
nobody. A client that keeps up (nothing queued, its socket's buffer nearly empty) gets
each event frame written straight to its transport, the same pre-built bytes as every
other client, without a task switch; the frames of one round of events go out in one
write (`flush`). A client that falls behind gets its frames through the queue and its
writer task, which waits for the socket to drain. Order events are never dropped: a
client whose queue overflows is closed with a clear code and reason, and can reconnect
and resubscribe for a fresh snapshot. Book quotes are conflated: per symbol only the
latest is kept until the writer gets to it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

from app.core.events import EventKind
from app.push.frames import Frame

OVERFLOW_CLOSE_CODE = WSCloseCode.TRY_AGAIN_LATER  # 1013
OVERFLOW_REASON = "too slow: outgoing queue full; reconnect and resubscribe for a snapshot"
CLOSE_TIMEOUT_S = 2.0
# Bytes the transport may already hold (the kernel's buffer being full) and a frame still be
# written straight to it; past this the client is behind and its frames wait in the queue.
DIRECT_BUFFER_LIMIT = 64 * 1024
# Frames one round may hold for a client before they are written (a quote that fills many
# orders at once): so what goes straight to a transport is bounded, as the queue is.
MAX_UNFLUSHED = 64


@dataclass(slots=True)
class OrderInterest:
    """Where a client is in one subscribed order's event stream."""

    ready: bool = False  # snapshot sent; until then events wait in `held`
    # (kind, fill seq, frame) of the events that arrived while the snapshot was read
    held: list[tuple[EventKind, int, Frame]] = field(default_factory=list)
    fill_seq: int = 0  # the last fill the client has (in the snapshot or pushed)
    final: bool = False  # the client has seen the order end


class PushClient:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        owner: str,
        *,
        max_queue: int,
        abort: Callable[[], None] | None = None,
        transport: asyncio.WriteTransport | None = None,
    ) -> None:
        self.ws = ws
        self._abort = abort
        self._transport = transport  # None: every frame goes through the writer task
        self._unflushed: list[bytes] = []  # frames for the transport, written on `flush`
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.owner = owner
        self.orders: dict[str, OrderInterest] = {}
        self.orders_channel = False
        self.account_channel = False
        self.books: set[str] = set()
        self._frames: deque[str] = deque()
        self._latest_book: dict[str, str] = {}
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self.closing = False
        self.overflowed = False
        self.close_code: int | None = None
        self._close_reason = ""

    # -- producer side (never awaits) ---------------------------------------------------

    def send(self, frame: str) -> None:
        """A message through the queue and the writer task (answers, snapshots, errors)."""
        if self.closing:
            return
        if self._unflushed:
            self.flush()  # what was pushed before this goes out before it
        if len(self._frames) >= self._max_queue:
            self.overflowed = True
            self.close(OVERFLOW_CLOSE_CODE, OVERFLOW_REASON)
            # Its writer may be blocked on a socket that never drains: don't wait for it.
            if self._writer is not None:
                self._writer.cancel()
            self._closer = asyncio.create_task(self._close_now())
            return
        self._frames.append(frame)
        self._wake.set()

    def push(self, frame: Frame) -> bool:
        """An event's frame: held for the next `flush` if the client keeps up, else queued.
        True when the client has just become one to flush (once per round)."""
        if self.closing or self._held(frame):
            return False
        if self._frames or not self._keeps_up():
            self.send(frame.text)
            return False
        self._unflushed.append(frame.wire)
        return True

    def push_book(self, symbol: str, frame: Frame) -> bool:
        """A quote: as `push` for a client that keeps up; otherwise only the latest quote
        per symbol waits for the writer."""
        if self.closing:
            return False
        if self._latest_book or self._frames:
            self.send_book(symbol, frame.text)
            return False
        if self._held(frame):
            return False
        if not self._keeps_up():
            self.send_book(symbol, frame.text)
            return False
        self._unflushed.append(frame.wire)
        return True

    def _held(self, frame: Frame) -> bool:
        """Added to this round's write if the client has one open (it kept up this round)."""
        unflushed = self._unflushed
        if not unflushed:
            return False
        unflushed.append(frame.wire)
        if len(unflushed) >= MAX_UNFLUSHED:
            self.flush()  # a long round: written now, and the next push looks again
        return True

    def flush(self) -> None:
        """Write the frames pushed since the last flush to the socket, in one write."""
        unflushed = self._unflushed
        if not unflushed:
            return
        self._unflushed = []
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.closed:
            return  # gone: it resubscribes for a snapshot if it comes back
        try:
            transport.write(unflushed[0] if len(unflushed) == 1 else b"".join(unflushed))
        except (ConnectionError, RuntimeError, OSError):  # went away under us: this one only
            self.closing = True
            self._wake.set()

    def _keeps_up(self) -> bool:
        transport = self._transport
        return (
            transport is not None
            and transport.get_write_buffer_size() <= DIRECT_BUFFER_LIMIT
            and not transport.is_closing()
            and not self.ws.closed
        )

    def send_book(self, symbol: str, frame: str) -> None:
        """A quote through the writer task: until it is written, the latest one wins."""
        if self.closing:
            return
        if self._unflushed:
            self.flush()  # what was pushed before this goes out before it
        self._latest_book[symbol] = frame  # latest wins
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.flush()  # what was pushed goes out before the close frame
            self.closing = True
            self.close_code = code
            self._close_reason = reason
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._unflushed) + len(self._frames) + len(self._latest_book)

    async def _close_now(self) -> None:
        try:
            await asyncio.wait_for(
                self.ws.close(code=self.close_code or 1000, message=self._close_reason.encode()),
                CLOSE_TIMEOUT_S,
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            if self._abort is not None:
                self._abort()

    # -- writer task ----------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._writer = asyncio.create_task(self.write_loop(), name="ws-writer")
        return self._writer

    async def finish(self) -> None:
        """Wait for the writer (and any overflow close) to be done."""
        for task in (self._writer, self._closer):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    async def write_loop(self) -> None:
        ws = self.ws
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self.closing:
                    break
                while self._frames or self._latest_book:
                    if self._frames:
                        await ws.send_str(self._frames.popleft())
                    else:
                        symbol = next(iter(self._latest_book))
                        await ws.send_str(self._latest_book.pop(symbol))
                    if self.closing:
                        break
        except (ConnectionError, RuntimeError):
            self.closing = True  # the socket went away under us
        if self.closing and self.close_code is not None and not ws.closed and not self.overflowed:
            await ws.close(code=self.close_code, message=self._close_reason.encode())
