"""The one backoff: exponential delays from `initial_s`, doubling up to `max_s`.

With `jitter` the delay is "equal jitter": uniform in [ceiling / 2, ceiling], so many
clients that failed together do not come back together, and none retries sooner than half
the plain delay. `retry()` runs an operation until it succeeds, sleeping between attempts
and retrying only the exceptions it is given; anything else is raised at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        jitter: bool = False,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not (initial_s > 0 and max_s > 0):
            raise ValueError(f"need initial_s > 0 and max_s > 0, got {initial_s} and {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self._rand = rand
        self.failures = 0

    def ceiling(self, failures: int) -> float:
        """The plain delay after `failures` failures in a row (1 for the first)."""
        if failures < 1:
            return 0.0
        # Past 2**64 the cap has long been reached; never compute a float overflow.
        return min(self.max_s, self.initial_s * 2 ** min(failures - 1, 64))

    def delay(self, failures: int) -> float:
        """The delay after `failures` failures in a row, with the jitter if any."""
        ceiling = self.ceiling(failures)
        return self._rand(ceiling / 2, ceiling) if self.jitter else ceiling

    def next_delay(self) -> float:
        """Count one more failure and return the delay before the next attempt."""
        self.failures += 1
        return self.delay(self.failures)

    def reset(self) -> None:
        """It worked: the next failure starts from `initial_s` again."""
        self.failures = 0


async def retry(
    operation: Callable[[], Awaitable[T]],
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    *,
    on_failure: Callable[[BaseException, float], bool | None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Await `operation()` until it returns, sleeping `backoff.next_delay()` after each
    failure of a `retry_on` type.

    `on_failure(exc, delay)` is called after each such failure (to log it); if it returns
    False, that exception is raised instead of retrying. Other exceptions go straight out.
    `backoff` is reset once the operation succeeds.
    """
    while True:
        try:
            result = await operation()
        except retry_on as exc:
            delay = backoff.next_delay()
            if on_failure is not None and on_failure(exc, delay) is False:
                raise
            await sleep(delay)
        else:
            backoff.reset()
            return result
