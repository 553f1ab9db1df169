"""Market data: the service's bookTicker rate as a ratio to a bare websocket client.

    python -m bench.market [frames]     # prints the rows, median of 3 runs each

Rows: the bare aiohttp client (receive + orjson.loads per frame, the baseline), the bare
picows client (the same over picows, the client stack the feed uses), the service at each
resting-order count (feed -> QuoteFanout -> executor and push hub, as `create_app` wires
them; nothing can fill), and the hard case: 10,000 resting orders, some marketable at the
touch while the touch repeats a level they already took (only the update id changes).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

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
from bench.market_emulator import TOUCH_BID

STREAM = "bench@bookTicker"
RUNS = 3
HARD_CASE_RESTING = 10_000


class _Emulator:
    """bench/market_emulator.py in its own process; counts the connections it was asked for."""

    def __init__(self, child: Child, url: str) -> None:
        self.child = child
        self.url = url
        self.opened = 0

    @classmethod
    async def start(cls) -> _Emulator:
        child = await Child.start(str(HERE / "market_emulator.py"))
        return cls(child, await child.line())

    async def subscribed(self) -> None:
        """The connection just opened is subscribed to the stream."""
        self.opened += 1
        await self.child.send(f"wait {STREAM} {self.opened}")

    def blast(self, frames: int, mode: str) -> asyncio.Task[str]:
        return asyncio.create_task(self.child.send(f"blast {STREAM} {frames} {mode}"))


async def bare_aiohttp(emulator: _Emulator, frames: int) -> float:
    """Frames per second from the first frame: receive + orjson.loads, nothing else."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{emulator.url}/stream?streams={STREAM}", max_msg_size=0, decode_text=False
        ) as ws,
    ):
        await emulator.subscribed()
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
        await blast
    return frames / elapsed


class _CountingListener(WSListener):  # type: ignore[misc]
    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.count = 0
        self.started = 0.0
        self.done = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        if not self.count:
            self.started = time.perf_counter()
        orjson.loads(frame.get_payload_as_memoryview())
        self.count += 1
        if self.count == self.frames:
            self.done.set_result(time.perf_counter() - self.started)


async def bare_picows(emulator: _Emulator, frames: int) -> float:
    """The same over picows."""
    transport, listener = await ws_connect(
        lambda: _CountingListener(frames), f"{emulator.url}/stream?streams={STREAM}"
    )
    try:
        await emulator.subscribed()
        blast = emulator.blast(frames, "quiet")
        elapsed = await listener.done
        await blast
    finally:
        transport.disconnect()
        await transport.wait_disconnected()
    return frames / elapsed


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
    return {"ups": frames / elapsed, "cpu_us_per_update": cpu / frames * 1e6, "fills": fills}


async def run_market(frames: int, resting_table: list[int]) -> dict[str, Any]:
    """Every row RUNS times, interleaved with the bare client; medians and ratios.

    Returns {"bare_aiohttp": ups, "bare_picows": ups, "service": {resting: row},
    "hard_case": row}, each service row {"ups", "cpu_us_per_update", "ratio", "fills"};
    "ratio" is to the bare aiohttp client's median.
    """
    emulator = await _Emulator.start()
    try:
        bare: list[float] = []
        picows: list[float] = []
        runs: dict[Any, list[dict[str, float]]] = {}
        for _ in range(RUNS):
            bare.append(await bare_aiohttp(emulator, frames))
            picows.append(await bare_picows(emulator, frames))
            for resting in resting_table:  # sell limits 1000..1499, bids 50..56
                runs.setdefault(resting, []).append(
                    await service(emulator, frames, resting, "quiet")
                )
            runs.setdefault("hard", []).append(
                await service(emulator, frames, HARD_CASE_RESTING, "touch")
            )
    finally:
        await emulator.child.stop()
    bare_ups = statistics.median(bare)

    def row(results: list[dict[str, float]]) -> dict[str, float]:
        ups = statistics.median(r["ups"] for r in results)
        return {
            "ups": ups,
            "ratio": ups / bare_ups,
            "cpu_us_per_update": statistics.median(r["cpu_us_per_update"] for r in results),
            "fills": max(r["fills"] for r in results),
        }

    return {
        "bare_aiohttp": bare_ups,
        "bare_picows": statistics.median(picows),
        "service": {resting: row(runs[resting]) for resting in resting_table},
        "hard_case": row(runs["hard"]),
    }


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    table = [int(n) for n in sys.argv[2].split(",")] if len(sys.argv) > 2 else [
        100, 1_000, 10_000, 100_000,
    ]  # fmt: skip
    install_uvloop(True)
    tune_gc()
    result = asyncio.run(run_market(frames, table))
    bare = result["bare_aiohttp"]
    print("| consumer | updates/s | CPU µs per update | ratio to bare aiohttp |")
    print("| --- | --- | --- | --- |")
    print(f"| bare aiohttp client (receive + orjson.loads) | {bare:,.0f} | | 1.00 |")
    picows = result["bare_picows"]
    print(
        f"| bare picows client (receive + orjson.loads) | {picows:,.0f} | | {picows / bare:.2f} |"
    )
    for resting, r in result["service"].items():
        print(
            f"| service, {resting:,} resting orders | {r['ups']:,.0f} | "
            f"{r['cpu_us_per_update']:.1f} | **{r['ratio']:.2f}** |"
        )
    r = result["hard_case"]
    print(
        f"| service, {HARD_CASE_RESTING:,} resting, touch repeats a taken level "
        f"({r['fills']:.0f} fill) | {r['ups']:,.0f} | {r['cpu_us_per_update']:.1f} | "
        f"**{r['ratio']:.2f}** |"
    )


if __name__ == "__main__":
    main()
