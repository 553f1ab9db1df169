"""The command queue on Redis streams, one stream per partition of symbols.

`send` appends a command (codec wire format) to `te:cmd:{p}`, p = `partition_of(symbol)`,
so one symbol's commands stay in one stream, in the order they were sent.

An executor reads the partitions it holds the lease of: `await queue.own({...})` (the lease
keeper calls it whenever its set changes) makes it read exactly those streams, through the
consumer group `executors` (created with MKSTREAM from id 0 when missing, so commands sent
before any executor existed are delivered too). For a newly owned partition it first
claims (XAUTOCLAIM, min-idle 0) and handles the entries a previous owner read but never
acknowledged, oldest first, then reads new ones (`>`): the commands of a partition reach
the handler in stream order, across a takeover too. Each command is acknowledged after the
handler returns, and the acknowledged entries are deleted in the same MULTI (XACK + XDEL),
so a stream holds only commands not yet handled (there is one consumer group; a second
group reading these streams would need the XDEL removed and a trim instead).

`own` returns once no read begun with the old set is in flight: after it returns, a
dropped partition is read no more and nothing of it is acknowledged by this consumer, so
the lease can be released and the next owner's claim sees everything. All owned streams are
read by one task with one blocking XREADGROUP (`block_ms`), so an ownership change waits at
most that long. Every `reclaim_interval_s` it also claims entries of its partitions left
pending more than `reclaim_idle_ms` by another consumer (an old owner that read once more
after losing its lease) or by itself (a reply lost to a connection error).

Delivery is at least once: a command handled but not acknowledged (the process died in
between, or Redis failed the XACK) is handled again by whoever reads the partition next,
so the handler must tolerate a repeated AddOrder or CancelOrder (the store is the truth:
an order already known or already final is ignored). A command that cannot be decoded or
whose handler raises is logged and acknowledged, so it cannot block its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from redis.exceptions import RedisError, ResponseError

from app.adapters.codec import DecodeError, decode_command, encode_command
from app.adapters.redis_bus import stream_entries
from app.adapters.redis_clients import call_and_read_clients
from app.core.commands import OrderCommand
from app.core.partitions import DEFAULT_PARTITIONS, partition_of
from app.ports import CommandHandler

log = structlog.get_logger(__name__)

_FIELD = b"c"
_CLOSE_GRACE_S = 2.0  # past the blocking read, how long close() lets the last round finish


def default_consumer() -> str:
    """A consumer name unique to this process (host, pid and a random suffix)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _as_list(response: Any) -> list[tuple[Any, Any]]:
    """XREADGROUP's answer as (stream, entries) pairs (the clients are pinned to RESP2)."""
    if not response:
        return []
    if isinstance(response, dict):
        return list(response.items())
    return [(item[0], item[1]) for item in response]


def _lag_since(entry_id: bytes | str) -> float:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return max(0.0, time.time() - int(text.partition("-")[0]) / 1000)


class RedisCommandQueue:
    def __init__(
        self,
        redis_url: str,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        consumer: str | None = None,
        group: str = "executors",
        prefix: str = "te:cmd:",
        block_ms: int = 500,
        batch: int = 100,
        reclaim_interval_s: float = 5.0,
        reclaim_idle_ms: int = 5000,
    ) -> None:
        self.partitions = partitions
        self.consumer = consumer or default_consumer()
        self.group = group
        self.prefix = prefix
        self._block_ms = block_ms
        self._batch = batch
        self._reclaim_interval_s = reclaim_interval_s
        self._reclaim_idle_ms = reclaim_idle_ms
        self._redis, self._reader_redis = call_and_read_clients(redis_url, block_ms)
        self._handler: CommandHandler | None = None
        self._wanted: frozenset[int] = frozenset()
        self._reading: frozenset[int] = frozenset()  # owned, and their backlog claimed
        self._round = asyncio.Lock()  # held by the reader for one read-and-handle round
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_reclaim = 0.0
        self._closed = False
        self.handled = 0
        self._lag_s = 0.0

    def stream_of(self, partition: int) -> str:
        return f"{self.prefix}{partition}"

    def partition_of(self, symbol: str) -> int:
        return partition_of(symbol, self.partitions)

    @property
    def owned(self) -> frozenset[int]:
        return self._wanted

    @property
    def lag_s(self) -> float:
        """How long the last command handled had waited since it was sent (0 when idle):
        from its stream id, which is Redis's clock at XADD, to this host's clock (so it
        includes their skew, normally milliseconds)."""
        return self._lag_s

    # -- the port ---------------------------------------------------------------------------

    async def send(self, command: OrderCommand) -> None:
        stream = self.stream_of(self.partition_of(command.symbol))
        await self._redis.xadd(stream, {_FIELD: encode_command(command)})

    def consume(self, handler: CommandHandler) -> None:
        self._handler = handler
        self._wake.set()
        if self._wanted:
            self._ensure_task()

    # -- ownership --------------------------------------------------------------------------

    async def own(self, partitions: Iterable[int]) -> None:
        """Read exactly these partitions from now on; returns when no read of a dropped
        partition is in flight any more."""
        wanted = frozenset(partitions)
        bad = [p for p in wanted if not 0 <= p < self.partitions]
        if bad:
            raise ValueError(f"no such partitions (0..{self.partitions - 1}): {sorted(bad)}")
        if self._closed and wanted:
            raise RuntimeError("the command queue is closed")
        self._wanted = wanted
        self._wake.set()
        if wanted:
            self._ensure_task()
        async with self._round:
            pass  # the round in flight (begun with the old set) is over

    async def close(self) -> None:
        """Stop reading (finishing the round in flight, acknowledging what it handled)."""
        with contextlib.suppress(TimeoutError):  # Redis unreachable: stop anyway
            await asyncio.wait_for(self.own(()), self._block_ms / 1000 + _CLOSE_GRACE_S)
        self._closed = True
        self._wake.set()
        task = self._task
        if task is not None:
            # The loop also stops on `_closed` within one blocking read: a cancel that lands
            # inside redis-py's own timeout and retry handling can be absorbed there.
            task.cancel()
            await asyncio.wait([task], timeout=self._block_ms / 1000 + _CLOSE_GRACE_S)
        await self._reader_redis.aclose()  # also ends a read still in flight
        await self._redis.aclose()
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=_CLOSE_GRACE_S)
            if not task.done():
                log.warning("commands.reader_did_not_stop", consumer=self.consumer)

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"redis-commands:{self.consumer}")

    # -- the reader -------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.1
        while not self._closed:
            if self._handler is None or not self._wanted:
                self._wake.clear()
                if self._handler is None or not self._wanted:
                    await self._wake.wait()
                    continue
            try:
                async with self._round:
                    await self._one_round()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis errors, and any bug: retried, never fatal
                if self._closed:
                    return
                # Claim everything again (ours included, in order) once Redis is back.
                self._reading = frozenset()
                if isinstance(exc, RedisError | OSError):
                    log.warning("commands.read_failed", error=str(exc), retry_s=delay)
                else:
                    log.exception("commands.read_failed", retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _one_round(self) -> None:
        handler = self._handler
        wanted = self._wanted
        if handler is None or not wanted:
            return
        self._reading &= wanted
        for partition in sorted(wanted - self._reading):
            await self._ensure_group(partition)
            await self._claim(partition, handler, min_idle_ms=0)
            self._reading |= {partition}
        now = time.monotonic()
        if now >= self._next_reclaim:
            if self._next_reclaim:  # the partitions just claimed need no second look
                for partition in sorted(self._reading):
                    await self._claim(partition, handler, min_idle_ms=self._reclaim_idle_ms)
            self._next_reclaim = now + self._reclaim_interval_s
        response = await self._reader_redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream_of(p): ">" for p in sorted(self._reading)},
            count=self._batch,
            block=self._block_ms,
        )
        if not response:
            self._lag_s = 0.0  # a whole blocking read with nothing new: idle
            return
        by_stream: dict[str, list[tuple[Any, Any]]] = {}
        for raw_stream, entries in _as_list(response):
            stream = raw_stream.decode() if isinstance(raw_stream, bytes) else str(raw_stream)
            by_stream[stream] = stream_entries([[stream, entries]])
        for stream, entries in by_stream.items():
            await self._handle(stream, entries, handler)

    async def _ensure_group(self, partition: int) -> None:
        try:
            await self._redis.xgroup_create(
                self.stream_of(partition), self.group, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claim(self, partition: int, handler: CommandHandler, *, min_idle_ms: int) -> None:
        """Take over and handle the partition's pending entries, oldest first."""
        stream = self.stream_of(partition)
        start: Any = "0-0"
        while True:
            reply = await self._redis.xautoclaim(
                stream, self.group, self.consumer, min_idle_ms, start_id=start, count=self._batch
            )
            start, claimed = reply[0], reply[1]
            if claimed:
                log.info(
                    "commands.claimed", stream=stream, count=len(claimed), min_idle_ms=min_idle_ms
                )
                await self._handle(stream, stream_entries([[stream, claimed]]), handler)
            if start in (b"0-0", "0-0"):
                return

    async def _handle(
        self, stream: str, entries: list[tuple[Any, Any]], handler: CommandHandler
    ) -> None:
        done: list[Any] = []
        for entry_id, fields in entries:
            if entry_id is None:
                continue
            done.append(entry_id)
            self._lag_s = _lag_since(entry_id)
            data = (fields or {}).get(_FIELD)
            try:
                if data is None:
                    raise DecodeError("no command field")
                command = decode_command(data)
            except DecodeError as exc:
                log.error("commands.bad_entry", stream=stream, id=entry_id, error=str(exc))
                continue
            try:
                handler(command)
                self.handled += 1
            except Exception:
                log.exception("commands.handler_failed", stream=stream, id=entry_id)
        if done:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(stream, self.group, *done)
                pipe.xdel(stream, *done)
                await pipe.execute()
