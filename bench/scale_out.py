"""Scale-out on this machine: intake and fills with 1-2 API and 1-2 executor processes on
PostgreSQL and Redis, against the single-process SQLite default, in one run.

    python -m bench.scale_out [--quick] [--output FILE]

Intake: wrk (or the aiohttp load client) posts orders for a few seconds against every API
process at once, the connections split between them; durable before 202 in every setup
(SQLite synchronous=FULL; PostgreSQL with fsync and synchronous_commit on). Fills: resting
sells on many symbols, then quotes that each offer one more unit, so every quote makes one
fill; the time from the first quote until every order is filled. Everything (servers,
service processes, load generator, emulator) shares this machine's cores, which is the
point of the numbers and their limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from app.emulator.server import BinanceEmulator
from bench.__main__ import _load, machine
from tests.engine_postgres import _find_bin_dir, _free_port, _Server
from tests.engine_redis import _redis_server, _start
from tests.service_process import ServiceProcess

SETUPS: list[tuple[str, int, int]] = [  # (name, api processes, executors)
    ("SQLite, one process (ROLE=all)", 0, 0),
    ("PostgreSQL + Redis, 1 api + 1 executor", 1, 1),
    ("PostgreSQL + Redis, 2 api + 1 executor", 2, 1),
    ("PostgreSQL + Redis, 2 api + 2 executors", 2, 2),
]


class DurablePostgres(_Server):
    """The test server, but durable: fsync and synchronous commit on, as in production."""

    def start(self) -> str:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip
        self.port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
            " -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@contextlib.asynccontextmanager
async def engines() -> AsyncIterator[tuple[str, str]]:
    bin_dir, redis_binary = _find_bin_dir(), _redis_server()
    if bin_dir is None or redis_binary is None:
        raise SystemExit("needs Debian's postgresql and redis-server (apt-get install ...)")
    postgres = DurablePostgres(bin_dir)
    folder = tempfile.TemporaryDirectory()
    redis_process, redis_port = _start(redis_binary, Path(folder.name))
    try:
        yield postgres.start(), f"redis://127.0.0.1:{redis_port}/0"
    finally:
        redis_process.kill()
        redis_process.wait()
        postgres.stop()
        folder.cleanup()


async def _fresh(store_url: str, bus_url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]
    import redis.asyncio as redis

    db = await asyncpg.connect(store_url)
    await db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await db.close()
    client = redis.Redis.from_url(bus_url)
    await client.flushall()
    await client.aclose()


async def _start_setup(
    apis: int, executors: int, folder: Path, upstream: str, store_url: str, bus_url: str
) -> tuple[list[ServiceProcess], list[ServiceProcess]]:
    common = {
        "LOG_LEVEL": "error", "RATE_LIMIT_PER_S": "0", "MAX_OPEN_ORDERS": "0",
        "UNSUBSCRIBE_DELAY_S": "30", "ORDER_TIMEOUT_SECONDS": "600",
        "EXCHANGE_FILTERS": "on",  # checked against the emulator's exchange info, as deployed
    }  # fmt: skip
    if not apis:
        service = ServiceProcess(
            folder / "sqlite.db", upstream, log_path=folder / "all.log", **common
        )
        await service.start()
        return [service], [service]
    scale = {**common, "STORE_URL": store_url, "BUS_URL": bus_url}
    execs = [ServiceProcess(folder / "x.db", upstream, ROLE="executor", **scale)]
    execs += [ServiceProcess(folder / "x.db", upstream, ROLE="executor", **scale)][: executors - 1]
    front = [
        ServiceProcess(
            folder / "x.db", upstream, log_path=folder / f"api{n}.log", ROLE="api", **scale
        )
        for n in range(apis)
    ]
    for process in [*execs, *front]:
        await process.start()
    async with asyncio.timeout(30):  # the executors share the partitions out
        while True:
            held = []
            for process in execs:
                _, body = await process.request("GET", "/readyz")
                held.append(body["service"]["partitions"] or [])
            if sum(len(h) for h in held) == 16 and all(held):
                break
            await asyncio.sleep(0.2)
    return front, execs


async def _intake(front: list[ServiceProcess], seconds: float) -> dict[str, float]:
    results = await asyncio.gather(
        *(_load(f"{process.url}/order/limit", seconds) for process in front)
    )
    return {
        "rps": sum(r["rps"] for r in results),
        "p99_ms": max(r.get("p99_ms", 0.0) for r in results),
        "errors": sum(r["statuses"].get("other", 0) for r in results),
    }


async def _fills(
    front: list[ServiceProcess], emulator: BinanceEmulator, symbols: int, per_symbol: int
) -> dict[str, float]:
    names = [f"F{n}USDT" for n in range(symbols)]
    async with aiohttp.ClientSession() as session:
        for n, name in enumerate(names):
            for m in range(per_symbol):
                url = f"{front[(n + m) % len(front)].url}/order/limit"
                body = {"symbol": name, "side": "sell", "order_size": "1", "price": "10"}
                async with session.post(url, json=body) as response:
                    assert response.status == 202, await response.text()
        for name in names:
            await emulator.wait_subscribed(f"{name.lower()}@bookTicker", timeout=30)
        started = time.perf_counter()
        for quantity in range(1, per_symbol + 1):  # each quote: one more unit, one fill
            for name in names:
                emulator.book_ticker(name, "10", str(quantity), "11", "1")
            await asyncio.sleep(0)
        waiting = list(names)  # (the intake run left other symbols' orders open)
        async with asyncio.timeout(120):
            while waiting:
                query = f"{front[0].url}/orders?status=open&limit=1&symbol={waiting[0]}"
                async with session.get(query) as response:
                    if not (await response.json())["orders"]:
                        waiting.pop(0)
                        continue
                await asyncio.sleep(0.01)  # other processes: nothing to await but their answer
        elapsed = time.perf_counter() - started
    return {"fills_per_s": symbols * per_symbol / elapsed, "seconds": elapsed}


async def run(quick: bool) -> list[dict[str, Any]]:
    seconds = 3.0 if quick else 8.0
    symbols, per_symbol = (8, 20) if quick else (16, 50)
    rows = []
    emulator = BinanceEmulator()
    emulator.list_every_symbol = True  # the bench's made-up symbols pass the filter checks
    upstream = await emulator.start()
    try:
        async with engines() as (store_url, bus_url):
            for name, apis, executors in SETUPS:
                await _fresh(store_url, bus_url)
                with tempfile.TemporaryDirectory() as folder:
                    front, execs = await _start_setup(
                        apis, executors, Path(folder), upstream, store_url, bus_url
                    )
                    try:
                        intake = await _intake(front, seconds)
                        fills = await _fills(front, emulator, symbols, per_symbol)
                    finally:
                        for process in {id(p): p for p in [*front, *execs]}.values():
                            await process.terminate(timeout=20)
                rows.append({"setup": name, **intake, **fills})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        await emulator.stop()
    return rows


def report(rows: list[dict[str, Any]], quick: bool) -> str:
    base = rows[0]
    lines = [
        "| setup | intake (orders/s) | × SQLite | intake p99 | fills/s | × SQLite |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['setup']} | {row['rps']:,.0f} | {row['rps'] / base['rps']:.2f} | "
            f"{row['p99_ms']:.1f} ms | {row['fills_per_s']:,.0f} | "
            f"{row['fills_per_s'] / base['fills_per_s']:.2f} |"
        )
    mode = " --quick" if quick else ""
    return (
        f"Command: `python -m bench.scale_out{mode}` on {machine()}.\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    text = report(asyncio.run(run(args.quick)), args.quick)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
