"""Upstream subscriptions for symbols that only a book watcher on another process wants.

The API processes declare which symbols their /ws clients watch; the executor owning a
symbol's partition holds the symbol on its feed while it is wanted, so its quotes flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from app.execution.interest import MarketInterest

log = structlog.get_logger(__name__)


async def follow_book_interest(
    wanted: Callable[[], Awaitable[set[str]]],
    owns: Callable[[str], bool],
    market: MarketInterest,
    *,
    every_s: float = 1.0,
) -> None:
    held: set[str] = set()
    try:
        while True:
            try:
                mine = {symbol for symbol in await wanted() if owns(symbol)}
            except Exception as exc:  # Redis away: keep what we hold until it answers
                log.warning("book_interest.unreadable", error=repr(exc))
                mine = held
            for symbol in mine - held:
                market.acquire(symbol)
            for symbol in held - mine:
                market.release(symbol)
            held = mine
            await asyncio.sleep(every_s)
    finally:
        for symbol in held:
            market.release(symbol)
