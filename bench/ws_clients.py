"""N websocket clients in their own process, all on channel `orders`; measures how long
each fill took from the upstream frame's arrival at the service to this client.

Prints `ready` once every client is subscribed, then one JSON line with p50/p99 (ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime

import aiohttp


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def main(base: str, clients: int, fills: int) -> None:
    latencies: list[float] = []
    done = asyncio.Event()
    finished = [0]
    # Every websocket holds its connection: lift the default 100-connection pool limit.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for _ in range(clients):
            ws = await session.ws_connect(f"{base.replace('http', 'ws')}/ws?channel=orders")
            await ws.receive_json()  # subscribed
            sockets.append(ws)

        async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
            seen = 0
            async for message in ws:
                arrived = time.time()
                event = json.loads(message.data)
                if event.get("event") == "fill":
                    latencies.append((arrived - _epoch(event["fill"]["ts"])) * 1000)
                    seen += 1
                    if seen == fills:
                        break
            finished[0] += 1
            if finished[0] == clients:
                done.set()

        tasks = [asyncio.create_task(listen(ws)) for ws in sockets]
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 300)
        for task in tasks:
            task.cancel()
    latencies.sort()
    print(json.dumps({"p50_ms": latencies[len(latencies) // 2],
                      "p99_ms": latencies[int(len(latencies) * 0.99)]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    from app.__main__ import install_uvloop

    install_uvloop(wanted=True)  # the harness, as lean as the service it measures
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
