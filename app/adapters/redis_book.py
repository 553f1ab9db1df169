"""The /ws book channel across processes, over Redis.

An API process with a book watcher says so in a sorted set (symbol -> when its interest
runs out, refreshed while someone watches). The executor owning the symbol's partition
subscribes upstream for it, and publishes the symbol's top of book on a pub/sub channel,
conflated to at most `max_per_s` a second. Every API process hears every symbol's channel
and hands the quotes to its push hub. Quotes are market data, not orders: a lost one is
replaced by the next, so plain pub/sub (no stream, no replay) is what fits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as redis
import structlog

from app.core.decimals import fmt
from app.core.domain import BookUpdate

log = structlog.get_logger(__name__)

INTEREST_KEY = "te:book:interest"
CHANNEL_PREFIX = "te:book:"
INTEREST_TTL_S = 10.0
REFRESH_S = 3.0


def encode_book(update: BookUpdate) -> bytes:
    """Every level the update shows (one for a ticker, up to 20 in depth mode) and whether it
    is a partial book, so a page served by an api process shows the same as one served by
    the executing process."""
    return orjson.dumps({
        "s": update.symbol, "u": update.update_id, "t": update.received_at,
        "b": [[fmt(p), fmt(q)] for p, q in update.bids],
        "a": [[fmt(p), fmt(q)] for p, q in update.asks],
        "d": update.full_depth,
    })  # fmt: skip


def decode_book(data: bytes) -> BookUpdate:
    body = orjson.loads(data)
    return BookUpdate(
        str(body["s"]), int(body["u"]),
        tuple((Decimal(p), Decimal(q)) for p, q in body["b"]),
        tuple((Decimal(p), Decimal(q)) for p, q in body["a"]),
        float(body["t"]),
        full_depth=bool(body.get("d", False)),  # absent: written before depth was relayed
    )  # fmt: skip


class RedisBookChannel:
    def __init__(self, url: str, *, max_per_s: float = 10.0) -> None:
        self._client = redis.Redis.from_url(url)
        self._interval_s = 1.0 / max_per_s
        self._watched: set[str] = set()
        self._latest: dict[str, BookUpdate] = {}  # conflated, waiting to be published
        self._tasks: list[asyncio.Task[None]] = []

    # -- API side: who watches, and the quotes that come back ------------------------------

    def watch(self, symbol: str) -> None:
        self._watched.add(symbol)
        self._spawn(self._declare({symbol}))

    def unwatch(self, symbol: str) -> None:
        self._watched.discard(symbol)  # the interest runs out by itself

    def listen(self, on_update: Callable[[BookUpdate], None]) -> None:
        self._tasks.append(asyncio.create_task(self._listen(on_update), name="book-listen"))
        self._tasks.append(asyncio.create_task(self._refresh(), name="book-interest"))

    async def _declare(self, symbols: set[str]) -> None:
        if not symbols:
            return
        seconds, _ = await self._client.time()
        await self._client.zadd(INTEREST_KEY, dict.fromkeys(symbols, seconds + INTEREST_TTL_S))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            with contextlib.suppress(redis.RedisError, OSError):
                await self._declare(set(self._watched))

    async def _listen(self, on_update: Callable[[BookUpdate], None]) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}q:*")
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    try:
                        on_update(decode_book(message["data"]))
                    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                        log.warning("book.bad_message", error=repr(exc))
            except (redis.RedisError, OSError) as exc:
                log.warning("book.listen_failed", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # -- executor side: what is wanted, and publishing it ----------------------------------

    async def wanted(self) -> set[str]:
        seconds, _ = await self._client.time()
        await self._client.zremrangebyscore(INTEREST_KEY, "-inf", seconds)
        members = await self._client.zrange(INTEREST_KEY, 0, -1)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    def offer(self, update: BookUpdate) -> None:
        """Keep the symbol's latest quote; the publisher sends it at its next turn."""
        self._latest[update.symbol] = update

    def start_publishing(self) -> None:
        self._tasks.append(asyncio.create_task(self._publish(), name="book-publish"))

    async def _publish(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if not self._latest:
                continue
            latest, self._latest = self._latest, {}
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for symbol, update in latest.items():
                        pipe.publish(f"{CHANNEL_PREFIX}q:{symbol}", encode_book(update))
                    await pipe.execute()
            except (redis.RedisError, OSError) as exc:
                log.warning("book.publish_failed", error=repr(exc))

    # -- both -----------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raises unless Redis answers (readiness: the bus is reachable)."""
        await self._client.ping()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("book.interest_not_declared", error=repr(task.exception()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
