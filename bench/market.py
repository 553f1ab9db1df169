"""Market data: the service's bookTicker rate as a ratio to a bare websocket client.

    python -m bench.market [frames] [resting,...]   # the rows, median of 3 runs each

Rows: the bare aiohttp client (receive + orjson.loads per frame, the baseline the target
is set against), the bare picows client (the same over picows, the client the feed uses),
the service at each resting-order count (feed -> QuoteFanout -> executor and push hub, as
`create_app` wires them; nothing can fill), and the hard case: 10,000 resting orders, some
marketable at the touch while the touch repeats a level they already took (only the
update id changes).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
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
from app.application import QuoteFanout
from app.core.commands import AddOrder
from app.core.domain import StreamKind
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.push.hub import PushHub
from app.tasks import TaskSupervisor
from bench.__main__ import HERE, Child, _order
from bench.emulator_proc import TOUCH_BID

STREAM = "bench@bookTicker"
RUNS = 3
HARD_CASE_RESTING = 10_000


class _Emulator:
    """bench/emulator_proc.py in its own process; counts the connections it was asked for."""

    def __init__(self, child: Child, url: str) -> None:
        self.child = child
        self.url = url
        self.opened = 0

    @classmethod
    async def start(cls) -> _Emulator:
        child = await Child.start(str(HERE / "emulator_proc.py"))
        return cls(child, await child.line())

    async def subscribed(self) -> None:
        """The connection just opened is subscribed to the stream."""
        self.opened += 1
        await self.child.send(f"wait {STREAM} {self.opened}")

    def blast(self, frames: int, mode: str) -> asyncio.Task[str]:
        return asyncio.create_task(self.child.send(f"blast {STREAM} {frames} {mode}"))


def _rates(frames: int, elapsed: float, cpu: float) -> dict[str, float]:
    return {"ups": frames / elapsed, "cpu_us_per_update": cpu / frames * 1e6}


async def bare_aiohttp(emulator: _Emulator, frames: int) -> dict[str, float]:
    """Frames per second from the first frame: receive + orjson.loads, nothing else."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{emulator.url}/stream?streams={STREAM}", max_msg_size=0, decode_text=False
        ) as ws,
    ):
        await emulator.subscribed()
        cpu = time.process_time()
        blast = emulator.blast(frames, "quiet")
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
        cpu = time.process_time() - cpu
        await blast
    return _rates(frames, elapsed, cpu)


async def bare_picows(emulator: _Emulator, frames: int) -> dict[str, float]:
    """The same over picows."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    loop = asyncio.get_running_loop()

    class CountingListener(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count = 0
            self.started = 0.0
            self.done: asyncio.Future[float] = loop.create_future()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            if not self.count:
                self.started = time.perf_counter()
            orjson.loads(frame.get_payload_as_memoryview())
            self.count += 1
            if self.count == frames:
                self.done.set_result(time.perf_counter() - self.started)

    transport, listener = await ws_connect(
        CountingListener, f"{emulator.url}/stream?streams={STREAM}"
    )
    assert isinstance(listener, CountingListener)
    try:
        await emulator.subscribed()
        cpu = time.process_time()
        blast = emulator.blast(frames, "quiet")
        elapsed = await listener.done
        cpu = time.process_time() - cpu
        await blast
    finally:
        transport.disconnect()
        await transport.wait_disconnected()
    return _rates(frames, elapsed, cpu)


async def service(emulator: _Emulator, frames: int, resting: int, mode: str) -> dict[str, float]:
    """The feed, QuoteFanout, the executor and the push hub as the app wires them."""
    with tempfile.TemporaryDirectory() as folder:
        store = await SqliteStore.open(Path(folder) / "md.db")
        tasks = TaskSupervisor()
        bus = InProcessBus()
        quotes = QuoteFanout()
        first_frame: list[float] = []

        def first(_update: Any) -> None:
            if not first_frame:
                first_frame.append(time.perf_counter())

        feed = BinanceFeed(emulator.url, StreamKind.BOOK_TICKER, quotes.update, quotes.stream_lost)
        market = MarketInterest(feed)
        executor = Executor(store, bus, market, LocalLimiter(0, 0), tasks)
        hub = PushHub(bus, acquire_book=market.acquire, release_book=market.release)
        # The first frame's time is taken by a consumer that then stays (one call per frame,
        # as cheap as a consumer can be).
        quotes.on_update += [first, executor.on_update, hub.on_update]
        quotes.on_stream_lost.append(executor.on_stream_lost)
        await feed.start()
        await executor.start()
        for n in range(resting):
            order = _order(n, "BENCH", "1000")
            if mode == "touch" and order.price <= Decimal(TOUCH_BID):
                await store.insert_order(order)  # it fills: its fill needs its row
            executor.on_command(AddOrder(order))
        worker = executor._workers["BENCH"]
        while len(worker.matcher) < resting:
            await asyncio.sleep(0.01)
        await emulator.subscribed()
        cpu = time.process_time()
        blast = emulator.blast(frames, mode)
        while worker.updates_applied + worker.updates_skipped < frames:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - first_frame[0]
        cpu = time.process_time() - cpu
        await blast
        fills = worker.fills
        await executor.stop()
        await tasks.close()
        await feed.stop()
        await store.close()
    return {**_rates(frames, elapsed, cpu), "fills": fills}


async def run_market(frames: int, resting_table: list[int]) -> dict[str, Any]:
    """Every row RUNS times; each run of a row right after a run of the bare client.

    Returns {"bare_aiohttp": row, "bare_picows": row or None, "service": {resting: row},
    "hard_case": row}. Each row: "ups" (updates/s, median), "cpu_us_per_update" (median),
    "ratio" (median over the runs of ups / the bare aiohttp client's ups in that run),
    "cpu_ratio" (likewise, bare CPU µs per update / this row's), and "fills" for the
    service rows. The machine may be shared: the per-run ratios are what to compare.
    """
    emulator = await _Emulator.start()
    rows: dict[Any, list[dict[str, float]]] = {}
    try:
        for _ in range(RUNS):
            measures: list[tuple[Any, Any]] = [
                ("picows", lambda: bare_picows(emulator, frames)),
                *(
                    (resting, lambda r=resting: service(emulator, frames, r, "quiet"))
                    for resting in resting_table  # sell limits 1000..1499, bids 50..56
                ),
                ("hard", lambda: service(emulator, frames, HARD_CASE_RESTING, "touch")),
            ]
            for name, measure in measures:
                bare = await bare_aiohttp(emulator, frames)
                result = await measure()
                if result is None:
                    continue
                result["ratio"] = result["ups"] / bare["ups"]
                result["cpu_ratio"] = bare["cpu_us_per_update"] / result["cpu_us_per_update"]
                rows.setdefault("bare", []).append(bare)
                rows.setdefault(name, []).append(result)
    finally:
        await emulator.child.stop()

    def median(results: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.median(r[key] for r in results) for key in results[0]}

    return {
        "bare_aiohttp": median(rows["bare"]),
        "bare_picows": median(rows["picows"]) if "picows" in rows else None,
        "service": {resting: median(rows[resting]) for resting in resting_table},
        "hard_case": median(rows["hard"]),
    }


def _row(name: str, r: dict[str, float]) -> str:
    ratio = f"**{r['ratio']:.2f}**" if "ratio" in r else "1.00"
    cpu_ratio = f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "1.00"
    return f"| {name} | {r['ups']:,.0f} | {r['cpu_us_per_update']:.2f} | {ratio} | {cpu_ratio} |"


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    table = [int(n) for n in sys.argv[2].split(",")] if len(sys.argv) > 2 else [
        100, 1_000, 10_000, 100_000,
    ]  # fmt: skip
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    install_uvloop(True)
    tune_gc()
    result = asyncio.run(run_market(frames, table))
    print(f"{frames:,} bookTicker frames per run, median of {RUNS} runs")
    print("| consumer | updates/s | CPU µs per update | ratio to bare aiohttp | CPU ratio |")
    print("| --- | --- | --- | --- | --- |")
    print(_row("bare aiohttp client (receive + orjson.loads)", result["bare_aiohttp"]))
    if result["bare_picows"] is not None:
        print(_row("bare picows client (receive + orjson.loads)", result["bare_picows"]))
    for resting, r in result["service"].items():
        print(_row(f"service, {resting:,} resting orders", r))
    hard = result["hard_case"]
    print(_row(
        f"service, {HARD_CASE_RESTING:,} resting, the touch repeating a level they took "
        f"({hard['fills']:.0f} fill)", hard,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
