"""N websocket clients in their own process, all on channel `orders`; measures how long
each fill took from the upstream frame's arrival at the service to this client.

    python bench/ws_clients.py <http://host:port> <clients> <fills>

Prints `ready` once every client is subscribed, then one JSON line with p50/p99 (ms). The
clients are bench/push_clients.py's lean ones (the arrival time taken as the bytes arrive,
JSON parsed after the run); bench/push.py spreads them over several processes instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

if not __package__:  # run as a script (as bench/__main__.py does): `bench` is at the root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.push_clients import run_clients


def _only_ready(line: str) -> None:
    if line == "ready":
        print(line, flush=True)


async def main(base: str, clients: int, fills: int) -> None:
    url = urlsplit(base)
    assert url.hostname is not None and url.port is not None
    latencies = sorted(await run_clients(url.hostname, url.port, clients, fills, _only_ready))
    print(json.dumps({"p50_ms": latencies[len(latencies) // 2],
                      "p99_ms": latencies[int(len(latencies) * 0.99)]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    from app.__main__ import install_uvloop

    install_uvloop(wanted=True)  # the harness, as lean as the service it measures
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
