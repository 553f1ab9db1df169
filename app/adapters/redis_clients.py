"""Redis clients as the stream adapters use them: one for calls, one for blocking reads.

The blocking read (XREAD, XREADGROUP) gets a client of its own, so sends and acks never
wait behind it, with a socket timeout longer than its block time (redis-py 8 sets a short
default). RESP2: the stream replies' shape the adapters read.
"""

from __future__ import annotations

import redis.asyncio as aioredis

CONNECT_TIMEOUT_S = 5.0
READ_MARGIN_S = 5.0  # a blocking read's socket timeout: its block time and this


def call_and_read_clients(url: str, block_ms: int) -> tuple[aioredis.Redis, aioredis.Redis]:
    calls = aioredis.Redis.from_url(url, protocol=2, socket_connect_timeout=CONNECT_TIMEOUT_S)
    reads = aioredis.Redis.from_url(
        url,
        protocol=2,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=block_ms / 1000 + READ_MARGIN_S,
    )
    return calls, reads
