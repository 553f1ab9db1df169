"""Benchmark suite: every number as a ratio to a baseline measured in the same run.

    python -m bench            # the full suite, writes BENCHMARKS.md
    python -m bench --quick    # the short version (`task bench`, and once in CI)

The emulator and the HTTP load generator run in processes of their own, so the side being
measured has a core to itself on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from app.__main__ import install_uvloop, tune_gc
from app.adapters.binance.feed import BinanceFeed
from app.adapters.inprocess import InProcessBus
from app.adapters.local_limiter import LocalLimiter
from app.adapters.sqlite_store import SqliteStore
from app.clock import now_us
from app.core.commands import AddOrder
from app.core.domain import OrderStatus, Side, StreamKind
from app.core.order import Order
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.execution.worker import SymbolWorker
from app.tasks import TaskSupervisor
from bench.intake_stages import CUT_STAGES
from tests.service_process import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STREAM = "bench@bookTicker"


def _more_files() -> None:
    """1,000 websocket clients need more than the usual 1,024 file descriptors."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


class Child:
    """A helper process speaking lines on stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=ROOT,
            preexec_fn=_more_files,
        )  # fmt: skip
        return cls(process)

    async def line(self, timeout: float = 120) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.readline(), timeout)).decode().strip()

    async def send(self, text: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.line()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def _wait_http(url: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


# -- 1. order intake ---------------------------------------------------------------------


async def bench_intake(seconds: float, emulator_url: str) -> dict[str, Any]:
    results = {}
    bare_port = free_port()
    bare = await Child.start(str(HERE / "bare_server.py"), str(bare_port))
    try:
        await _wait_http(f"http://127.0.0.1:{bare_port}/")
        results["bare"] = await _load(f"http://127.0.0.1:{bare_port}/order/limit", seconds)
    finally:
        await bare.stop()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "intake.db"
        results["service"] = await _load_service(("-m", "app"), database, seconds, emulator_url)
        stored = sqlite3.connect(database).execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    results["stored"] = stored
    results["accepted"] = results["service"]["statuses"].get("202", 0)
    return results


async def bench_intake_stages(seconds: float, emulator_url: str) -> dict[str, dict[str, Any]]:
    """The service with layers cut off (bench/intake_stages.py), under the same load."""
    results = {}
    for stage in CUT_STAGES:
        with tempfile.TemporaryDirectory() as folder:
            results[stage] = await _load_service(
                ("-m", "bench.intake_stages", stage), Path(folder) / "stage.db", seconds,
                emulator_url,
            )  # fmt: skip
    return results


async def _load_service(
    command: tuple[str, ...], database: Path, seconds: float, emulator_url: str
) -> dict[str, Any]:
    """Start the service (`command`, configured as for intake), load it, stop it."""
    port = free_port()
    service = await Child.start(*command, env={
        "HTTP_PORT": str(port), "DATABASE_PATH": str(database), "LOG_LEVEL": "error",
        "LOG_FORMAT": "json", "BINANCE_WS_URL": emulator_url, "RATE_LIMIT_PER_S": "0",
        "MAX_OPEN_ORDERS": "0",
    })  # fmt: skip
    try:
        await _wait_http(f"http://127.0.0.1:{port}/readyz")
        return await _load(f"http://127.0.0.1:{port}/order/limit", seconds)
    finally:
        await service.stop()


def load_generator() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp load client"


async def _load(url: str, seconds: float) -> dict[str, Any]:
    """64 connections for `seconds`, with wrk when installed (it is the faster generator, so
    the bare handler's ceiling is real), else an aiohttp client in its own process."""
    if shutil.which("wrk"):
        return await _wrk(url, seconds)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "load_client.py"), url, "64", str(seconds),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, _ = await process.communicate()
    result: dict[str, Any] = json.loads(out)
    result["rps"] = result["requests"] / result["seconds"]
    return result


def _wrk_ms(text: str) -> float:
    number = float(text.rstrip("musn"))
    if text.endswith("us"):
        return number / 1000
    if text.endswith("ms"):
        return number
    return number * 1000  # seconds


def _percentile_ms(out: str, percent: int) -> float:
    """From wrk's "Latency Distribution" lines only ("50%" can stand in the thread table
    too); NaN when wrk printed none (no request completed)."""
    found = re.search(rf"^\s+{percent}%\s+(\S+)$", out, re.M)
    return _wrk_ms(found.group(1)) if found else float("nan")


async def _wrk(url: str, seconds: float) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", "-c64", f"-d{seconds:g}s", "-s", str(HERE / "post.lua"), "--latency", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out = (await process.communicate())[0].decode()
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    elapsed = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    return {
        "requests": requests, "seconds": elapsed, "rps": requests / elapsed,
        "statuses": {"202": requests - failed, "other": failed},
        "p50_ms": _percentile_ms(out, 50),
        "p99_ms": _percentile_ms(out, 99),
        "errors": " ".join(re.findall(r"Socket errors:.*", out)),
    }  # fmt: skip


# -- 2. market data ------------------------------------------------------------------------


async def bench_bare_client(emulator: Child, url: str, frames: int, opened: int) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{url}/stream?streams={STREAM}", max_msg_size=0, decode_text=False
        ) as ws,
    ):
        await emulator.send(f"wait {STREAM} {opened}")
        blast = asyncio.create_task(emulator.send(f"blast {STREAM} {frames}"))
        count = 0
        started = 0.0
        async for message in ws:
            if not count:
                started = time.perf_counter()
            orjson.loads(message.data)
            count += 1
            if count == frames:
                break
        elapsed = time.perf_counter() - started
        await blast
    return frames / elapsed


def _order(n: int, symbol: str, price: str) -> Order:
    created = now_us()
    return Order(
        order_id=uuid.uuid4().hex, owner="bench", client_order_id=None, symbol=symbol,
        side=Side.SELL, order_size=Decimal("1.5"), price=Decimal(price) + n % 500,
        timeout_s=3600, status=OrderStatus.OPEN, created_at_us=created,
        updated_at_us=created, expires_at_us=created + 3_600_000_000,
    )  # fmt: skip


async def bench_service_updates(
    emulator: Child, url: str, frames: int, resting: int, opened: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStore.open(Path(folder) / "md.db")
        tasks = TaskSupervisor()
        executor: Executor | None = None
        first_frame: list[float] = []

        def on_update(update: Any) -> None:
            if not first_frame:
                first_frame.append(time.perf_counter())
            executor.on_update(update)  # type: ignore[union-attr]

        feed = BinanceFeed(url, StreamKind.BOOK_TICKER, on_update)
        executor = Executor(store, InProcessBus(), MarketInterest(feed), LocalLimiter(0, 0), tasks)
        await feed.start()
        await executor.start()
        for n in range(resting):
            executor.on_command(AddOrder(_order(n, "BENCH", "1000")))  # bids never reach them
        worker = executor._workers["BENCH"]
        while len(worker.matcher) < resting:
            await asyncio.sleep(0.01)
        await emulator.send(f"wait {STREAM} {opened}")
        cpu = time.process_time()
        blast = asyncio.create_task(emulator.send(f"blast {STREAM} {frames}"))
        while worker.updates_applied + worker.updates_skipped < frames:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - first_frame[0]  # from the first frame, as the bare client
        cpu = time.process_time() - cpu
        await blast
        await executor.stop()
        await tasks.close()
        await feed.stop()
        await store.close()
    return {"ups": frames / elapsed, "cpu_us_per_update": cpu / frames * 1e6}


# -- 3. fill to push -------------------------------------------------------------------------


async def bench_fill_to_push(clients: int, fills: int, emulator_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        service = await Child.start("-m", "app", env={
            "HTTP_PORT": str(port), "DATABASE_PATH": str(Path(folder) / "push.db"),
            "LOG_LEVEL": "error", "LOG_FORMAT": "json", "BINANCE_WS_URL": emulator_url,
            "RATE_LIMIT_PER_S": "0", "WS_MAX_CONNECTIONS_PER_OWNER": "5000",
        })  # fmt: skip
        watchers = None
        try:
            await _wait_http(f"http://127.0.0.1:{port}/readyz")
            watchers = await Child.start(
                str(HERE / "ws_clients.py"), f"http://127.0.0.1:{port}", str(clients), str(fills)
            )
            assert await watchers.line() == "ready"
            async with aiohttp.ClientSession() as session:
                for n in range(fills):
                    body = {"symbol": "PUSHUSDT", "order_size": "1", "price": "1"}
                    async with session.post(f"http://127.0.0.1:{port}/order/limit", json=body):
                        pass
                    if n == 0:
                        await _emulator.send("wait pushusdt@bookTicker 0")
                    # A new, higher bid each time: a repeated level offers nothing new.
                    await _emulator.send(f"quote pushusdt@bookTicker PUSHUSDT {1 + n / 1000}")
            result = json.loads(await watchers.line(timeout=120))
        finally:
            if watchers is not None:
                await watchers.stop()
            await service.stop()
    return result


# -- 4. memory ---------------------------------------------------------------------------------


class _NullStore:
    async def apply(self, changes: Any) -> None:
        pass


class _NullFeed:
    def acquire(self, symbol: str) -> None:
        pass

    def release(self, symbol: str) -> None:
        pass


async def bench_memory(resting: int) -> float:
    worker = SymbolWorker("MEM", _NullStore(), InProcessBus(), _NullFeed())  # type: ignore[arg-type]
    orders = [_order(n, "MEM", "1000") for n in range(resting)]
    from app.execution.worker import Add, _Batch

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    batch = _Batch()
    for order in orders:
        worker._add(order, batch)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # What resting costs beyond the request itself: the engine's view, the indexes, the
    # expiry entry. The Order record (the request's own data) is counted separately.
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    more = [_order(n, "MEM", "1000") for n in range(1000)]
    record = (tracemalloc.get_traced_memory()[0] - base) / 1000
    tracemalloc.stop()
    del more, Add
    return (after - before) / resting + record


# -- 5. against the original design -------------------------------------------------------------


async def bench_original_design(
    emulator: Child, url: str, frames: int, orders: int, opened: int
) -> dict[str, Any]:
    """One upstream connection per order (the original service) against one shared one."""
    limit = Decimal("1000")
    async with aiohttp.ClientSession() as session:
        sockets = [
            await session.ws_connect(f"{url}/ws/{STREAM}", max_msg_size=0) for _ in range(orders)
        ]
        await emulator.send(f"wait {STREAM} {opened + orders}")
        received = [0]
        done = asyncio.Event()

        async def per_order(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                quote = orjson.loads(message.data)
                if Decimal(quote["b"]) >= limit:  # the original's per-order fill check
                    pass
                received[0] += 1
                if received[0] == frames * orders:
                    done.set()

        readers = [asyncio.create_task(per_order(ws)) for ws in sockets]
        cpu = time.process_time()
        started = time.perf_counter()
        await emulator.send(f"blast {STREAM} {frames}")
        await done.wait()
        original = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}
        for ws in sockets:
            await ws.close()
        for reader in readers:
            reader.cancel()
    ours = await bench_service_updates(emulator, url, frames, orders, opened + orders + 1)
    return {
        "original_connections": orders,
        "original_cpu_us_per_update": original["cpu"] / frames * 1e6,
        "ours_connections": 1,
        "ours_cpu_us_per_update": ours["cpu_us_per_update"],
    }


# -- the run -----------------------------------------------------------------------------------

_emulator: Child


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


async def run(quick: bool, output: Path, say: Callable[[str], None]) -> None:
    global _emulator
    frames = 20_000 if quick else 200_000
    resting_table = [100, 1_000, 10_000] if quick else [100, 1_000, 10_000, 100_000]
    push_clients = [10, 100] if quick else [10, 100, 1_000]
    push_fills = 20 if quick else 50
    intake_seconds = 3 if quick else 5
    _emulator = await Child.start(str(HERE / "emulator_proc.py"))
    url = await _emulator.line()
    opened = 0
    try:
        say("order intake")
        intake = await bench_intake(intake_seconds, url)
        say("order intake, layer by layer")
        intake["stages"] = await bench_intake_stages(intake_seconds, url)
        say("market data: bare client")
        bare_ups = statistics.median([
            await bench_bare_client(_emulator, url, frames, opened := opened + 1)
            for _ in range(1 if quick else 3)
        ])  # fmt: skip
        say("market data: service")
        table = []
        for resting in resting_table:
            opened += 1
            table.append(
                (resting, await bench_service_updates(_emulator, url, frames, resting, opened))
            )
        say("fill to push")
        push = [(n, await bench_fill_to_push(n, push_fills, url)) for n in push_clients]
        say("memory")
        memory = await bench_memory(100_000)
        say("original design")
        original = await bench_original_design(_emulator, url, frames // 10, 100, opened)
    finally:
        await _emulator.stop()
    write_report(output, quick, intake, bare_ups, table, push, memory, original, frames)


def _stage_rows(bare_rps: float, stages: dict[str, dict[str, Any]]) -> list[str]:
    names = {
        "http": "+ HTTP layer (token, rate limit, JSON, validation, the answer)",
        "service": "+ order service (the order, its `accepted` event, the symbol worker)",
        "durable": "+ durability (committed to SQLite before the 202)",
    }
    rows = [f"| bare aiohttp handler | {bare_rps:.0f} | {1e6 / bare_rps:.0f} | |"]
    previous = 1e6 / bare_rps
    for stage, result in stages.items():
        per_request = 1e6 / result["rps"]
        rows.append(
            f"| {names[stage]} | {result['rps']:.0f} | {per_request:.0f} | "
            f"+{per_request - previous:.0f} µs |"
        )
        previous = per_request
    return rows


def write_report(output: Path, quick: bool, intake: dict[str, Any], bare_ups: float,
                 table: list[tuple[int, dict[str, float]]], push: list[tuple[int, dict[str, float]]],
                 memory: float, original: dict[str, Any], frames: int) -> None:  # fmt: skip
    command = "python -m bench --quick" if quick else "python -m bench"
    service, bare = intake["service"], intake["bare"]
    ten_k = dict(table).get(10_000, table[-1][1])
    lines = [
        "# Benchmarks", "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {machine()}. Shared and noisy: read the ratios, not the absolute numbers.",
        "", "## 1. Order intake (`POST /order/limit`, 64 connections, load from another process)", "",
        f"Load generator: {load_generator()}.", "",
        "| server | requests/s | p50 ms | p99 ms | ratio |", "| --- | --- | --- | --- | --- |",
        f"| bare aiohttp handler answering 202 | {bare['rps']:.0f} | {bare['p50_ms']:.1f} | {bare['p99_ms']:.1f} | 1.00 |",
        f"| the service (durable in SQLite before 202) | {service['rps']:.0f} | {service['p50_ms']:.1f} | {service['p99_ms']:.1f} | **{service['rps'] / bare['rps']:.2f}** |",
        "", f"{intake['accepted']} answered 202 while the load ran, {intake['stored']} rows stored "
        f"({'every 202 is on disk' if intake['stored'] >= intake['accepted'] else 'ANSWERED ORDERS MISSING'}"
        "; requests still in flight when the generator stopped are stored too). "
        f"Target ≥ 0.60. Event loop: {'uvloop' if _has_uvloop() else 'asyncio'} on both sides.",
        "", "Where an order's time goes: the same load against the service with the layers after "
        "each row cut off (`bench/intake_stages.py`); time per request is 1 / throughput, "
        "the event loop being saturated.", "",
        "| layers running | requests/s | µs per request | added by the layer |",
        "| --- | --- | --- | --- |",
        *_stage_rows(bare["rps"], {**intake["stages"], "durable": service}),
        "", f"## 2. Market data ({frames:,} bookTicker frames sent as fast as the emulator can)", "",
        "| consumer | updates/s | CPU µs per update | ratio to bare |", "| --- | --- | --- | --- |",
        f"| bare aiohttp client (receive + parse) | {bare_ups:,.0f} | | 1.00 |",
    ]  # fmt: skip
    for resting, result in table:
        lines.append(
            f"| the service, {resting:,} resting orders | {result['ups']:,.0f} | "
            f"{result['cpu_us_per_update']:.1f} | **{result['ups'] / bare_ups:.2f}** |"
        )
    first, last = table[0], table[-1]
    lines += [
        "", f"Target at 10,000 resting orders: ≥ 0.70 (measured {ten_k['ups'] / bare_ups:.2f}). "
        f"From {first[0]:,} to {last[0]:,} resting orders ({last[0] // first[0]:,}× more) the "
        f"CPU per update goes from {first[1]['cpu_us_per_update']:.1f} to "
        f"{last[1]['cpu_us_per_update']:.1f} µs: the engine never walks orders that cannot "
        "fill.",
        "", "## 3. Fill to push (upstream frame received → `/ws` client has the fill)", "",
        "| subscribed clients | p50 ms | p99 ms |", "| --- | --- | --- |",
    ]  # fmt: skip
    for clients, result in push:
        lines.append(f"| {clients:,} | {result['p50_ms']:.2f} | {result['p99_ms']:.2f} |")
    lines += [
        "", "Clients run in a process of their own (one for all of them); the latency is from "
        "the frame's receive time in the service to the client's receive time. "
        "Target: p99 < 10 ms at 100 clients.",
        "", "## 4. Memory", "",
        f"Bytes per resting order at 100,000 orders: **{memory:,.0f}** (target < 2,048): the order "
        "record, the engine's view of it, its indexes and its place in the expiry heap (tracemalloc).",
        "", "## 5. Against the original design (100 concurrent orders on one symbol)", "",
        "| design | upstream connections | CPU µs per upstream update |", "| --- | --- | --- |",
        f"| one connection per order (original) | {original['original_connections']} | {original['original_cpu_us_per_update']:.0f} |",
        f"| one shared connection (this service) | {original['ours_connections']} | {original['ours_cpu_us_per_update']:.0f} |",
        "",
    ]  # fmt: skip
    lines.append((HERE / "analysis.md").read_text())
    output.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="the short version (< 2 minutes)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    # The in-process measurements (market data) run as `python -m app` serves: on uvloop
    # when installed and with its collector settings, bare client and service alike.
    install_uvloop(wanted=True)
    tune_gc()
    started = time.perf_counter()
    asyncio.run(
        run(
            args.quick,
            args.output,
            lambda s: print(f"[{time.perf_counter() - started:6.1f}s] {s}", flush=True),
        )
    )
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
