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
import logging
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog

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
from app.tasks import TaskSupervisor

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


async def run(quick: bool, say: Callable[[str], None]) -> Report:
    # Imported here: each module imports its helpers from this one.
    from bench.intake import run_intake
    from bench.market import run_market
    from bench.memory import run_memory, run_memory_recovered
    from bench.push import run_push
    from bench.restart import run_restart

    frames = 20_000 if quick else 200_000
    resting_table = [100, 1_000, 10_000] if quick else [100, 1_000, 10_000, 100_000]
    say("order intake, layer by layer (default log level)")
    intake = await run_intake(3 if quick else 5, rounds=1 if quick else 3)
    say("market data")
    market = await run_market(frames, resting_table)
    say("fill to push")
    push = await run_push([10, 100] if quick else [10, 100, 1_000], 20 if quick else 100, 4)
    say("memory")
    resting = 10_000 if quick else 100_000
    memory = {
        "shared": await run_memory(resting),
        "distinct": await run_memory(resting, distinct=True),
        "recovered": await run_memory_recovered(resting),
    }
    say("restart")
    restart = await run_restart(10_000 if quick else 100_000, repeats=1 if quick else 3)
    say("original design")
    emulator = await Child.start(str(HERE / "emulator_proc.py"))
    try:
        url = await emulator.line()
        original = await bench_original_design(emulator, url, frames // 10, 100, 0)
    finally:
        await emulator.stop()
    return Report(quick, intake, market, push, memory, restart, original, frames)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


class Report:
    """BENCHMARKS.md: one section per target of issue 12, every figure from this run."""

    def __init__(
        self, quick: bool, intake: dict[str, Any], market: dict[str, Any],
        push: list[dict[str, Any]], memory: dict[str, dict[str, float]],
        restart: dict[str, Any], original: dict[str, Any], frames: int,
    ) -> None:  # fmt: skip
        self.quick, self.frames = quick, frames
        self.intake, self.market, self.push = intake, market, push
        self.memory, self.restart, self.original = memory, restart, original

    def render(self) -> str:
        command = "python -m bench --quick" if self.quick else "python -m bench"
        lines = [
            "# Benchmarks", "",
            f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            f"Machine: {machine()}. Shared and noisy: read the ratios, not the absolute numbers.",
            f"Event loop: {'uvloop' if _has_uvloop() else 'asyncio'}, on both sides of every comparison.",
            "", *self._summary(), *self._intake(), *self._market(), *self._push(),
            *self._memory(), *self._restart(), *self._original(), "",
        ]  # fmt: skip
        return "\n".join(lines) + (HERE / "analysis.md").read_text()

    def _summary(self) -> list[str]:
        ten_k = self._ten_k()
        push = {row["clients"]: row for row in self.push}
        rows = [
            ("Market data at 10,000 resting orders, ratio to a bare aiohttp client", "≥ 1.0",
             f"{ten_k['ratio']:.2f} (CPU {ten_k['cpu_ratio']:.2f})", ten_k["ratio"] >= 1.0),
            ("Order intake at the default log level, ratio to a bare aiohttp handler", "≥ 0.6",
             f"{self.intake['ratio']:.2f}", self.intake["ratio"] >= 0.6),
            ("Fill to push, p99 at 100 clients", "< 5 ms",
             f"{push[100]['p99_ms']:.2f} ms", push[100]["p99_ms"] < 5),
        ]  # fmt: skip
        if 1_000 in push:
            rows.append(("Fill to push, p99 at 1,000 clients (4 client processes)", "< 50 ms",
                         f"{push[1_000]['p99_ms']:.2f} ms", push[1_000]["p99_ms"] < 50))  # fmt: skip
        shared = self.memory["shared"]
        rows += [
            (f"Memory per resting order at {shared['resting']:,.0f}", "< 600 B",
             f"{shared['bytes_per_order']:,.0f} B", shared["bytes_per_order"] < 600),
            (f"Restart with {self.restart['open_orders']:,} open orders → /readyz 200", "< 5 s",
             f"{self.restart['seconds_to_ready']:.2f} s", self.restart["seconds_to_ready"] < 5),
        ]  # fmt: skip
        return [
            "## Targets (issue 12), this run", "",
            "| measure | target | measured | |", "| --- | --- | --- | --- |",
            *(f"| {name} | {target} | {value} | {_met(ok)} |" for name, target, value, ok in rows),
            "", "Where a target is not met, \"Where the time goes\" below gives the profile and "
            "the measured reason.", "",
        ]  # fmt: skip

    def _ten_k(self) -> dict[str, float]:
        service = self.market["service"]
        result: dict[str, float] = service.get(10_000, service[max(service)])
        return result

    def _intake(self) -> list[str]:
        i = self.intake
        rows = [
            f"| {row['layer']} | {row['rps']:,.0f} | {row['us']:.0f} | {row['cpu_us']:.0f} | "
            + (f"+{row['added_cpu_us']:.0f} µs |" if "added_cpu_us" in row else " |")
            for row in i["layers"]
        ]
        ratios = ", ".join(f"{r:.2f}" for r in i["ratios"])
        stored_ok = i["stored"] >= i["accepted"]
        return [
            "## 1. Order intake (`POST /order/limit`, wrk, 64 connections, another process)", "",
            f"Load generator: {load_generator()}. The service runs as `python -m app` does by "
            f"default: LOG_LEVEL={i['log_level']}, JSON log lines, durable in SQLite before "
            "each 202. Only the per-owner limits are off (one owner sends everything).", "",
            "| server | requests/s | p50 ms | p99 ms | CPU µs per request | ratio |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| bare aiohttp handler answering 202 | {i['bare_rps']:,.0f} | {i['bare_p50_ms']:.1f} | "
            f"{i['bare_p99_ms']:.1f} | {i['bare_cpu_us']:.0f} | 1.00 |",
            f"| the service | {i['service_rps']:,.0f} | {i['p50_ms']:.1f} | {i['p99_ms']:.1f} | "
            f"{i['service_cpu_us']:.0f} | **{i['ratio']:.2f}** |",
            "", f"Ratio per round: {ratios} (the table shows the median round). "
            f"{i['accepted']:,} answered 202, {i['stored']:,} rows stored "
            f"({'every 202 is on disk' if stored_ok else 'ANSWERED ORDERS MISSING'}), "
            f"{i['log_lines']:,} `order.accepted` log lines.", "",
            "Layer by layer: the same load against the service cut after each layer "
            "(`bench/intake_stages.py`); µs per request = 1 / throughput, and the server's own "
            "CPU time per request (steadier on a shared machine).", "",
            "| layers running | requests/s | µs per request | CPU µs per request | added (CPU) |",
            "| --- | --- | --- | --- | --- |", *rows, "",
        ]  # fmt: skip

    def _market(self) -> list[str]:
        m = self.market

        def row(name: str, r: dict[str, float]) -> str:
            ratio = f"**{r['ratio']:.2f}**" if "ratio" in r else "1.00"
            cpu = f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "1.00"
            return f"| {name} | {r['ups']:,.0f} | {r['cpu_us_per_update']:.2f} | {ratio} | {cpu} |"

        lines = [
            f"## 2. Market data ({self.frames:,} bookTicker frames per run, sent as fast as "
            "the emulator can)", "",
            "Each row is the median of 3 runs; each run of a row comes right after a run of "
            "the bare client, and the ratio is taken per run.", "",
            "| consumer | updates/s | CPU µs per update | ratio to bare aiohttp | CPU ratio |",
            "| --- | --- | --- | --- | --- |",
            row("bare aiohttp client (receive + orjson.loads)", m["bare_aiohttp"]),
        ]  # fmt: skip
        if m.get("bare_picows") is not None:
            lines.append(row("bare picows client (receive + orjson.loads)", m["bare_picows"]))
        for resting, r in m["service"].items():
            lines.append(row(f"the service, {resting:,} resting orders", r))
        hard = m["hard_case"]
        lines += [
            row("the service, 10,000 resting, the touch repeating a level they took "
                f"({hard['fills']:.0f} fill)", hard),
            "",
        ]  # fmt: skip
        return lines

    def _push(self) -> list[str]:
        return [
            "## 3. Fill to push (upstream frame received → `/ws` client has the fill)", "",
            "| subscribed clients | client processes | fills | p50 ms | p99 ms | max ms |",
            "| --- | --- | --- | --- | --- | --- |",
            *(f"| {r['clients']:,} | {r['processes']} | {r['fills']} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['max_ms']:.2f} |" for r in self.push),
            "", "Clients in processes of their own (`bench/push_clients.py`, lean raw-protocol "
            "clients); fills measured one at a time; latency = client arrival − the fill's `ts` "
            "(the service's receive time of the upstream frame), one machine clock. The fill is "
            "committed to SQLite (synchronous commit) before it is pushed.", "",
        ]  # fmt: skip

    def _memory(self) -> list[str]:
        m = self.memory
        return [
            "## 4. Memory (tracemalloc, everything a resting order holds in the service)", "",
            "| orders | bytes per resting order |", "| --- | --- |",
            f"| {m['shared']['resting']:,.0f} orders, 500 price levels, 10 sizes (as accepted) | "
            f"**{m['shared']['bytes_per_order']:,.0f}** |",
            f"| {m['distinct']['resting']:,.0f} orders, every price and size distinct | "
            f"{m['distinct']['bytes_per_order']:,.0f} |",
            f"| {m['recovered']['resting']:,.0f} orders recovered from SQLite after a restart | "
            f"{m['recovered']['bytes_per_order']:,.0f} |",
            "", "Built as the service builds them: the request parsed by its model, the order "
            "as intake makes it, sent as a command to a real executor; the executor's and "
            "workers' maps, the engine's view, the price index and the expiry slot all count.", "",
        ]  # fmt: skip

    def _restart(self) -> list[str]:
        r = self.restart
        runs = ", ".join(f"{s:.2f}" for s in r["runs_s"])
        return [
            "## 5. Restart", "",
            f"`python -m app` on a database holding {r['open_orders']:,} open orders over 20 "
            "symbols, each with a stored ledger: **{:.2f} s** to `/readyz` 200 (median; runs: {}), "
            "against {:.2f} s for the same start on an empty database. 200 means recovery is "
            "done: every worker holds its orders with its ledger restored.".format(
                r["seconds_to_ready"], runs, r["empty_start_s"]),
            "",
        ]  # fmt: skip

    def _original(self) -> list[str]:
        o = self.original
        return [
            "## 6. Against the original design (100 concurrent orders on one symbol)", "",
            "| design | upstream connections | CPU µs per upstream update |", "| --- | --- | --- |",
            f"| one connection per order (original) | {o['original_connections']} | "
            f"{o['original_cpu_us_per_update']:.0f} |",
            f"| one shared connection (this service) | {o['ours_connections']} | "
            f"{o['ours_cpu_us_per_update']:.0f} |",
            "",
        ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="the short version")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    # The in-process measurements (market data) run as `python -m app` serves: on uvloop
    # when installed and with its collector settings, bare client and service alike.
    install_uvloop(wanted=True)
    tune_gc()
    # The services measured run in processes of their own, with their own logging; in this
    # process only errors are worth a line.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    started = time.perf_counter()
    report = asyncio.run(
        run(args.quick, lambda s: print(f"[{time.perf_counter() - started:6.1f}s] {s}", flush=True))
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.render())
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
