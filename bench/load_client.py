"""HTTP load in its own process: `concurrency` connections posting orders for `seconds`.

Prints one JSON line: requests, seconds, statuses, p50/p99 latency (ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

BODY = (
    b'{"symbol": "BENCHUSDT", "side": "sell", "order_size": "1", "price": "1000", "timeout_s": 600}'
)


async def main(url: str, concurrency: int, seconds: float) -> None:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=BODY) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({
        "requests": len(latencies), "seconds": elapsed, "statuses": statuses,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
