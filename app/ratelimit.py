"""The one rate limiter: at most `limit` takes per key in any window of `window_s` seconds.

A sliding-window log. Each key keeps the times of its last `limit` takes (a deque with
`maxlen=limit`, so appending drops the oldest); a take is allowed when fewer than `limit`
were made, or when the oldest of those `limit` is at least `window_s` old. That is exactly
"never more than `limit` in any window" (a window [t, t + window_s) holds at most `limit`
takes), in O(1) per take and `limit` floats per key.

It serves both:

- the per-owner order-request limit (`per_second(rate)`: bursts of up to `rate` at once,
  `rate` a second sustained; a fractional rate such as 0.5 is one take per 2 s), where
  `try_take(owner)` answers 0 or the seconds to wait (for `Retry-After`);
- the Binance connection's outgoing messages (`take()` waits until a send is allowed),
  where Binance counts a plain sliding window: a token bucket would let its burst plus its
  rate through inside one window (8 for 4 a second).

Keys idle for a whole window hold nothing back and are dropped now and then, so the map
stays as small as the set of recently active keys.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or not window_s > 0:
            raise ValueError(f"need limit >= 1 and window_s > 0, got {limit} and {window_s}")
        self.limit = int(limit)
        self.window_s = float(window_s)
        self._clock = clock
        self._sleep = sleep
        self._logs: dict[Hashable, deque[float]] = {}
        self._next_sweep = -math.inf

    @classmethod
    def per_second(
        cls, rate: float, *, clock: Callable[[], float] = time.monotonic
    ) -> SlidingWindowLimiter | None:
        """`rate` takes a second per key, bursts of up to `rate` (at least 1); None if 0 (off).

        A whole `limit = floor(rate)` in a window of `limit / rate` seconds: 100/s is 100
        per 1 s, 2.5/s is 2 per 0.8 s, 0.5/s is 1 per 2 s.
        """
        if not rate > 0:
            return None
        limit = max(1, int(rate))
        return cls(limit, limit / rate, clock=clock)

    def try_take(self, key: Hashable = None) -> float:
        """Take one now if allowed (0.0); else take nothing and say how many seconds until
        one would be allowed."""
        now = self._clock()
        log = self._logs.get(key)
        if log is None:
            if now >= self._next_sweep:
                self._sweep(now)
            self._logs[key] = deque((now,), maxlen=self.limit)
            return 0.0
        if len(log) == self.limit:
            wait = log[0] + self.window_s - now  # exact: now + wait is that instant again
            if wait > 0:
                return wait
        log.append(now)
        return 0.0

    async def take(self, key: Hashable = None) -> None:
        """Wait until a take is allowed, then take it (fair enough for a few waiters: each
        re-checks after its sleep, and a check and its take have no await between them)."""
        while (wait := self.try_take(key)) > 0:
            await self._sleep(wait)

    def _sweep(self, now: float) -> None:
        """Forget keys whose every take is a window old: they hold nothing back."""
        horizon = now - self.window_s
        stale = [key for key, log in self._logs.items() if log[-1] <= horizon]
        for key in stale:
            del self._logs[key]
        self._next_sweep = now + self.window_s

    def __len__(self) -> int:
        """Keys currently remembered (for tests and metrics)."""
        return len(self._logs)
