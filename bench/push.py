"""Fill to push: from the upstream frame's receive in the service to a `/ws` client having
the fill, at several numbers of subscribed clients.

    python -m bench.push [--clients 10 100 1000] [--fills 50] [--processes 4]

The clients are spread over `processes` processes (bench/push_clients.py), so that no one
client process is what is measured. The fills are measured one at a time: an order is
placed, every client has its `accepted`, then one quote fills it, and every client has the
`fill` and `filled` before the next order. Each latency is the client's arrival time minus
the fill's `ts` (the service's receive time of the frame); both clocks are this machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.__main__ import HERE, Child, _wait_http
from tests.service_process import free_port, rest_url_of

SYMBOL = "PUSHUSDT"
STREAM = "pushusdt@bookTicker"


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _split(clients: int, processes: int) -> list[int]:
    """`clients` over at most `processes` processes, as even as can be."""
    processes = max(1, min(processes, clients))
    share, extra = divmod(clients, processes)
    return [share + (n < extra) for n in range(processes)]


def _read_latencies(folder: Path) -> list[float]:
    """Every client process's latencies (ms), sorted."""
    files = folder.glob("latencies-*.json")
    return sorted(value for path in files for value in orjson.loads(path.read_bytes()))


async def _all_say(children: list[Child], expected: str, timeout: float = 60) -> None:
    for child in children:
        line = await child.line(timeout)
        if line != expected:
            raise RuntimeError(f"a client process said {line!r}, expected {expected!r}")


async def fill_to_push(
    emulator: Child, emulator_url: str, clients: int, fills: int, processes: int
) -> dict[str, Any]:
    """One service, `clients` clients over `processes` processes, `fills` fills."""
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        service = await Child.start("-m", "app", env={
            "HTTP_PORT": str(port), "DATABASE_PATH": str(Path(folder) / "push.db"),
            "LOG_LEVEL": "error", "LOG_FORMAT": "json", "BINANCE_WS_URL": emulator_url,
            "BINANCE_REST_URL": rest_url_of(emulator_url),
            "RATE_LIMIT_PER_S": "0", "WS_MAX_CONNECTIONS_PER_OWNER": str(clients + 10),
        })  # fmt: skip
        watchers: list[Child] = []
        try:
            await _wait_http(f"http://127.0.0.1:{port}/readyz")
            for share in _split(clients, processes):
                output = str(Path(folder) / f"latencies-{len(watchers)}.json")
                args = ("127.0.0.1", str(port), str(share), str(fills), output)
                watchers.append(await Child.start(str(HERE / "push_clients.py"), *args))
                # One process connects at a time: the service's accept loop is not measured.
                await _all_say(watchers[-1:], "ready")
            async with aiohttp.ClientSession() as session:
                for n in range(1, fills + 1):
                    body = {"symbol": SYMBOL, "order_size": "1", "price": "1"}
                    async with session.post(f"http://127.0.0.1:{port}/order/limit", json=body):
                        pass
                    await _all_say(watchers, f"accepted {n}")
                    if n == 1:
                        await emulator.send(f"wait {STREAM} 0")
                    # A new, higher bid each time: a repeated level offers nothing new.
                    await emulator.send(f"quote {STREAM} {SYMBOL} {1 + n / 1000}")
                    await _all_say(watchers, f"fill {n}")
                    await _all_say(watchers, f"filled {n}")
            await _all_say(watchers, "written")
            latencies = _read_latencies(Path(folder))
        finally:
            for child in watchers:
                await child.stop()
            await service.stop()
    if len(latencies) != clients * fills:
        raise RuntimeError(f"{len(latencies)} fills arrived, expected {clients * fills}")
    return {
        "clients": clients, "processes": len(watchers), "fills": fills,
        "p50_ms": statistics.median(latencies), "p99_ms": _percentile(latencies, 0.99),
        "max_ms": latencies[-1],
    }  # fmt: skip


async def run_push(clients_table: list[int], fills: int, processes: int) -> list[dict[str, Any]]:
    """p50/p99 (ms) per number of clients, each against a fresh service and database."""
    emulator = await Child.start(str(HERE / "emulator_proc.py"))
    try:
        url = await emulator.line()
        return [await fill_to_push(emulator, url, n, fills, processes) for n in clients_table]
    finally:
        await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.push")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1_000])
    parser.add_argument("--fills", type=int, default=50)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    from app.__main__ import install_uvloop

    install_uvloop(wanted=True)
    for row in asyncio.run(run_push(args.clients, args.fills, args.processes)):
        print(
            f"{row['clients']:>6,} clients over {row['processes']} processes, {row['fills']} "
            f"fills: p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, "
            f"max {row['max_ms']:.2f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
