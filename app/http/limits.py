"""Limits on what one request or one owner may take: body size, read time, request rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from aiohttp import web

from app.http.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
# How long a client may take to send a request's headers (from connecting, or from the end
# of its previous answer on a kept-alive connection) and, once they are in, its body.
READ_TIMEOUT_S = 10.0
READ_TIMEOUT = web.AppKey("read_timeout_s", float)


class RateLimiter:
    """`rate` requests per second per owner, in bursts of up to `rate` at once; 0 = off."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # owner -> (tokens, stamp)

    def check(self, owner: str) -> None:
        """Take one token for `owner`, or raise a 429 saying when to retry."""
        if self.rate <= 0:
            return
        now = self._clock()
        tokens, stamp = self._buckets.get(owner, (self.rate, now))
        tokens = min(self.rate, tokens + (now - stamp) * self.rate)
        if tokens < 1:
            self._buckets[owner] = (tokens, now)
            retry_after = max(1, math.ceil((1 - tokens) / self.rate))
            raise ApiError(
                429,
                f"rate limit: at most {self.rate:g} order requests per second",
                headers={"Retry-After": str(retry_after)},
            )
        self._buckets[owner] = (tokens - 1, now)
