"""Who needs a symbol's market data: orders (per-symbol workers) and book watchers.

The feed subscribes a symbol while anyone holds it; this counts the holders so that the
last order ending does not unsubscribe a symbol a web page is still watching.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol


class Feed(Protocol):
    def acquire(self, symbol: str) -> None: ...

    def release(self, symbol: str) -> None: ...

    def down_since(self, symbol: str | None = None) -> float | None: ...


class MarketInterest:
    def __init__(self, feed: Feed) -> None:
        self._feed = feed
        self._holders: Counter[str] = Counter()

    def acquire(self, symbol: str) -> None:
        self._holders[symbol] += 1
        if self._holders[symbol] == 1:
            self._feed.acquire(symbol)

    def down_since(self, symbol: str) -> float | None:
        """When the upstream connection carrying `symbol` went down (None while it is up)."""
        return self._feed.down_since(symbol)

    def release(self, symbol: str) -> None:
        if self._holders[symbol] <= 0:
            return
        self._holders[symbol] -= 1
        if not self._holders[symbol]:
            del self._holders[symbol]
            self._feed.release(symbol)
