"""Per-owner limits held in Redis, so that they hold across every api process.

- **Request rate**: the same rule as the in-process limiter (`app.ratelimit`'s sliding
  window, `SlidingWindowLimiter.per_second`), held in Redis: at most `limit = max(1,
  floor(rate))` requests per owner in any window of `limit / rate` seconds (100/s: 100 per
  1 s, bursts of up to 100; 0.5/s: 1 per 2 s), across every api process together. Each
  owner has a list `{prefix}rate:{owner}` of its last `limit` request times, updated by one
  Lua script (atomic, one round trip) whose clock is Redis's `TIME`, so the processes' own
  clocks never matter. The list expires a window after the last request (an idle owner
  costs nothing). A refused request records nothing and answers the seconds until the
  oldest of those `limit` requests leaves the window. A rate of 0 turns the limit off (no
  Redis call at all).
- **Open orders**: one hash `{prefix}open` of owner -> count. `reserve_open` adds one
  unless the owner is at `max_open` (0: no cap), in one script; `release_open` subtracts,
  never below 0 (a count reaching 0 is removed).
- **Seeding the counts** (`reset_open`): every api process calls it at start with the
  counts it read from the store. Only the first call of a deployment writes them; it also
  sets the marker `{prefix}open:seeded`, and later calls (a second api process, or one
  restarting while others serve) leave the live counts alone, since a count read from the
  store a moment ago would forget reservations in flight elsewhere. Counts are therefore
  seeded once per Redis keyspace: if Redis loses its data the next api process to start
  re-seeds them; to re-seed on purpose (after a crash left a reservation unreleased, say),
  delete the marker and restart an api process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import redis.asyncio as aioredis

# KEYS[1]: the owner's log of request times (microseconds, oldest first). ARGV: limit,
# window (microseconds), ttl (ms). Returns the seconds until a request would be allowed,
# as a string ("0": allowed now, and recorded).
_TAKE_REQUEST = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('LLEN', KEYS[1]) >= limit then
  local wait = tonumber(redis.call('LINDEX', KEYS[1], -limit)) + window - now
  if wait > 0 then
    if wait > window then wait = window end  -- Redis's clock went back (a failover)
    return string.format('%.17g', wait / 1000000)
  end
end
redis.call('RPUSH', KEYS[1], string.format('%.0f', now))
redis.call('LTRIM', KEYS[1], -limit, -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return '0'
"""

# KEYS[1]: the open-count hash. ARGV: owner, cap (0: none). Returns 1 if reserved.
_RESERVE_OPEN = """
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local cap = tonumber(ARGV[2])
if cap > 0 and n >= cap then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], n + 1)
return 1
"""

# KEYS[1]: the open-count hash. ARGV: owner, count.
_RELEASE_OPEN = """
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') - tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], n)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
"""

# KEYS[1]: the open-count hash, KEYS[2]: the marker. ARGV: owner, count, owner, count...
# Returns 1 if the counts were written, 0 if they had been seeded already.
_RESET_OPEN = """
if redis.call('SET', KEYS[2], '1', 'NX') == false then return 0 end
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > 0 then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
"""


class RedisLimiter:
    def __init__(
        self,
        redis_url: str,
        rate_per_s: float,
        max_open: int,
        *,
        prefix: str = "te:limits:",
    ) -> None:
        self.rate = rate_per_s  # 0: off
        self.max_open = max_open  # 0: no cap
        self._prefix = prefix
        self._open_key = f"{prefix}open"
        self._seeded_key = f"{prefix}open:seeded"
        self._redis = aioredis.Redis.from_url(redis_url)
        self._take = self._redis.register_script(_TAKE_REQUEST)
        self._reserve = self._redis.register_script(_RESERVE_OPEN)
        self._release = self._redis.register_script(_RELEASE_OPEN)
        self._reset = self._redis.register_script(_RESET_OPEN)

    async def take_request(self, owner: str) -> float:
        rate = self.rate
        if rate <= 0:
            return 0.0
        limit = max(1, int(rate))  # as SlidingWindowLimiter.per_second
        window_us = limit / rate * 1_000_000
        ttl_ms = math.ceil(window_us / 1000) + 1000  # then every take is a window old
        wait = await self._take(
            keys=[f"{self._prefix}rate:{owner}"], args=[limit, repr(window_us), ttl_ms]
        )
        return float(wait)

    async def reserve_open(self, owner: str) -> bool:
        return bool(await self._reserve(keys=[self._open_key], args=[owner, self.max_open]))

    async def release_open(self, owner: str, count: int = 1) -> None:
        if count > 0:
            await self._release(keys=[self._open_key], args=[owner, count])

    async def reset_open(self, counts: Mapping[str, int]) -> None:
        """Seed the open counts, unless this deployment's counts were seeded already."""
        await self.seed_open(counts)

    async def seed_open(self, counts: Mapping[str, int]) -> bool:
        """`reset_open`, saying whether these counts were written (True) or ignored."""
        args: list[str | int] = []
        for owner, count in counts.items():
            args += [owner, int(count)]
        return bool(await self._reset(keys=[self._open_key, self._seeded_key], args=args))

    async def open_of(self, owner: str) -> int:
        value = await self._redis.hget(self._open_key, owner)
        return int(value) if value is not None else 0

    async def close(self) -> None:
        await self._redis.aclose()
