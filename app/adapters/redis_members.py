"""Which executors are alive, in Redis: a sorted set of owner -> when its word runs out.

Times come from the Redis server's clock, so the executors' own clocks never matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as redis

KEY = "te:executors"


class RedisMembers:
    def __init__(self, client: redis.Redis, key: str = KEY) -> None:
        self._client = client
        self._key = key

    @classmethod
    def from_url(cls, url: str) -> RedisMembers:
        return cls(redis.Redis.from_url(url))

    async def heartbeat(self, owner: str, ttl_s: float) -> Sequence[str]:
        seconds, micros = await self._client.time()
        now = seconds + micros / 1e6
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(self._key, {owner: now + ttl_s})
            pipe.zremrangebyscore(self._key, "-inf", now)
            pipe.zrange(self._key, 0, -1)
            *_, live = await pipe.execute()
        return sorted(member.decode() if isinstance(member, bytes) else member for member in live)

    async def leave(self, owner: str) -> None:
        await self._client.zrem(self._key, owner)

    async def close(self) -> None:
        await self._client.aclose()
