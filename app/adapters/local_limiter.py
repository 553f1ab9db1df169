"""Per-owner limits kept in this process: request rate and open orders.

The rate is `app.ratelimit`'s sliding window per owner: `RATE_LIMIT_PER_S` a second, in
bursts of up to that many at once (a whole rate: never more than that many in any second;
0.5 is one request per 2 s). The open-order count is held here and given back as orders end.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping

from app.ratelimit import SlidingWindowLimiter


class LocalLimiter:
    def __init__(
        self, rate_per_s: float, max_open: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s  # 0: off
        self.max_open = max_open  # 0: off
        self._requests = SlidingWindowLimiter.per_second(rate_per_s, clock=clock)
        self._open: Counter[str] = Counter()

    async def take_request(self, owner: str) -> float:
        return self.take_request_now(owner)

    def take_request_now(self, owner: str) -> float:
        """0 if the owner may make an order request now, else the seconds until it may."""
        requests = self._requests
        return 0.0 if requests is None else requests.try_take(owner)

    async def reserve_open(self, owner: str) -> bool:
        if self.max_open and self._open[owner] >= self.max_open:
            return False
        self._open[owner] += 1
        return True

    async def release_open(self, owner: str, count: int = 1) -> None:
        left = self._open[owner] - count
        if left > 0:
            self._open[owner] = left
        else:
            self._open.pop(owner, None)

    async def reset_open(self, counts: Mapping[str, int]) -> None:
        self._open = Counter({owner: n for owner, n in counts.items() if n > 0})

    def open_of(self, owner: str) -> int:
        return self._open[owner]
