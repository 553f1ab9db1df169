"""The event bus on a Redis stream: every process sees every event (fan-out).

`publish` appends each event to one stream (`te:events`, `XADD` pipelined, trimmed to about
`maxlen` entries with `MAXLEN ~`), in the codec's wire format (`app.adapters.codec`).

Reading: one reader task per bus (so one blocking connection per process, however many
subscriptions it has) follows the stream with `XREAD BLOCK`, with no consumer group: every
api process gets every event. It decodes each entry once and offers it to every
subscription of this bus, in stream order. The reader starts at the stream's last entry on
`await bus.start()` (call it at process start-up, before serving) or else on the first
`subscribe`; a `publish` made while it is starting waits for that starting point. A
subscription gets what the reader reads after it was made, except what this process
published before making it (skipped by stream id): an event this process publishes after
subscribing is never missed. (Events other processes published an instant before may come
too: there is no common clock to order them by. A subscription made on a bus never started
could miss what other processes publish while the reader makes its first read, hence
`start()`.) After a Redis error the reader reconnects and resumes after the last entry it
read: nothing is missed unless the stream was trimmed past it meanwhile (keep `maxlen` well
above what can pile up during an outage).

Overflow: a subscription with `maxsize` queued events ends when one more arrives (its
`async for` finishes), like the in-process bus: never a silent drop.

Duplicates: the PostgreSQL outbox relays at least once, so after a relayer crash an event
can be on the stream twice. The reader drops an event whose key (order id, kind, fill seq)
it has already delivered in this process: those identify an event (an order is accepted
once, fills once per seq, ends once). The memory of keys is bounded: the last `dedup_keys`
(200,000 by default, about 17 MB) are kept, oldest forgotten first, which covers any
realistic repeat (one comes within seconds of the original). Keys are kept as 64-bit
digests: the chance that two of 200,000 collide (and one event is wrongly dropped) is
about 1e-9.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import structlog
from redis.exceptions import RedisError

from app.adapters.codec import DecodeError, decode_event, encode_event
from app.adapters.redis_clients import call_and_read_clients
from app.adapters.subscription import QueueSubscription
from app.core.events import OrderEvent

log = structlog.get_logger(__name__)

_FIELD = b"e"
_READY_WAIT_S = 5.0  # how long a publish waits for a starting reader (Redis is down past it)
_CLOSE_GRACE_S = 2.0  # past one blocking read, how long close() waits for the reader


def event_key(event: OrderEvent) -> int:
    """What identifies an event: (order id, kind, fill seq), as a 64-bit digest (a set of
    200,000 of them takes about 17 MB; the tuples would take 50)."""
    text = f"{event.order_id}\0{event.kind.value}\0{event.fill_seq}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest())


class _Recent:
    """The last `size` keys added, the oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, key: int) -> bool:
        """Remember the key; False if it was remembered already."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._size:
            self._keys.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def stream_entries(response: Any) -> list[tuple[Any, Any]]:
    """The (id, fields) entries of an XREAD/XREADGROUP answer, in stream order (RESP2: a
    list of [stream, entries]; RESP3: a dict of stream -> entries or [entries])."""
    if not response:
        return []
    per_stream = response.values() if isinstance(response, dict) else (r[1] for r in response)
    out: list[tuple[Any, Any]] = []
    for items in per_stream:
        for item in items or ():
            if isinstance(item, tuple):
                out.append((item[0], item[1]))
            else:  # RESP3 wraps a stream's entries in one more list
                out.extend((entry[0], entry[1]) for entry in item)
    return out


def _format_id(entry_id: tuple[int, int]) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


class RedisSubscription(QueueSubscription):
    """One consumer's queue of events; ends on `close()`, on overflow, or with the bus."""

    def __init__(self, bus: RedisEventBus, maxsize: int, after: tuple[int, int]) -> None:
        super().__init__(bus.discard, maxsize)  # type: ignore[arg-type]
        self.after = after  # stream ids up to this one were published before it was made

    def offer_entry(self, entry_id: tuple[int, int], event: OrderEvent) -> None:
        if entry_id > self.after:
            self.offer(event)


class RedisEventBus:
    def __init__(
        self,
        redis_url: str,
        stream: str = "te:events",
        maxlen: int = 100_000,
        *,
        dedup_keys: int = 200_000,
        block_ms: int = 1000,
        batch: int = 500,
    ) -> None:
        self.stream = stream
        self.maxlen = maxlen
        self._block_ms = block_ms
        self._batch = batch
        self._redis, self._reader_redis = call_and_read_clients(redis_url, block_ms)
        self._subscriptions: set[RedisSubscription] = set()
        self._seen = _Recent(dedup_keys)
        self._cursor: tuple[int, int] | None = None  # the last stream id the reader handled
        self._published: tuple[int, int] = (0, 0)  # the last id this bus appended
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closed = False
        self.duplicates_dropped = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following the stream from its current end (idempotent)."""
        self._ensure_reader()
        assert self._ready is not None
        await asyncio.wait([self._ready])

    async def close(self) -> None:
        """End every subscription, stop the reader and close the connections."""
        self._closed = True
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()  # releases a publish waiting for a start that never came
        for subscription in list(self._subscriptions):
            subscription.close()
        reader = self._reader
        if reader is not None:
            # The loop also stops on `_closed` within one blocking read: a cancel that lands
            # inside redis-py's own timeout and retry handling can be absorbed there.
            reader.cancel()
            await asyncio.wait([reader], timeout=self._block_ms / 1000 + _CLOSE_GRACE_S)
        await self._reader_redis.aclose()  # also ends a read still in flight
        await self._redis.aclose()
        if reader is not None and not reader.done():
            await asyncio.wait([reader], timeout=_CLOSE_GRACE_S)
            if not reader.done():
                log.warning("bus.reader_did_not_stop", stream=self.stream)

    def _ensure_reader(self) -> None:
        if self._closed:
            raise RuntimeError("the bus is closed")
        if self._reader is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(), name=f"redis-bus:{self.stream}")

    # -- the port ---------------------------------------------------------------------------

    async def publish(self, events: Sequence[OrderEvent]) -> None:
        if not events:
            return
        if self._ready is not None and not self._ready.done():
            # A subscription was just made: publish after the reader's starting point.
            await asyncio.wait([self._ready], timeout=_READY_WAIT_S)
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    self.stream, {_FIELD: encode_event(event)}, maxlen=self.maxlen, approximate=True
                )
            ids = await pipe.execute()
        self._published = max(self._published, _parse_id(ids[-1]))

    def subscribe(self, maxsize: int = 0) -> RedisSubscription:
        self._ensure_reader()
        after = max(self._published, self._cursor or (0, 0))
        subscription = RedisSubscription(self, maxsize, after)
        self._subscriptions.add(subscription)
        return subscription

    def discard(self, subscription: RedisSubscription) -> bool:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            return True
        return False

    # -- the reader -------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ready is not None
        delay = 0.1
        while not self._closed:
            try:
                if self._cursor is None:
                    last = await self._reader_redis.xrevrange(self.stream, count=1)
                    last_id = last[0][0] if last else None
                    self._cursor = _parse_id(last_id) if last_id is not None else (0, 0)
                    if not self._ready.done():
                        self._ready.set_result(None)
                response = await self._reader_redis.xread(
                    {self.stream: _format_id(self._cursor)},
                    count=self._batch,
                    block=self._block_ms,
                )
                delay = 0.1
                for entry_id, fields in stream_entries(response):
                    self._deliver(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis errors, and any bug: retried, never fatal
                if self._closed:
                    return
                if isinstance(exc, RedisError | OSError):
                    log.warning(
                        "bus.read_failed", stream=self.stream, error=str(exc), retry_s=delay
                    )
                else:
                    log.exception("bus.read_failed", stream=self.stream, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _deliver(
        self, raw_id: bytes | str | None, fields: dict[bytes | str, bytes | str] | None
    ) -> None:
        if raw_id is None:
            return
        entry_id = _parse_id(raw_id)
        self._cursor = entry_id
        data = (fields or {}).get(_FIELD)
        if data is None:
            log.error("bus.bad_entry", stream=self.stream, id=_format_id(entry_id))
            return
        try:
            event = decode_event(data)
        except DecodeError as exc:
            log.error("bus.bad_entry", stream=self.stream, id=_format_id(entry_id), error=str(exc))
            return
        if not self._seen.add(event_key(event)):
            self.duplicates_dropped += 1
            return
        for subscription in list(self._subscriptions):
            subscription.offer_entry(entry_id, event)
