"""Where a fill's time goes on its way to the `/ws` clients, stage by stage.

    python -m bench.profile_push [clients] [fills]

The service runs in this process with timestamps taken at each stage (the methods are
wrapped here, the code is as it ships); the emulator and the clients (bench/push_clients.py)
run in processes of their own. Each stage is the time since the service received the
upstream frame that made the fill: the worker has it, the commit starts, the commit is
done, the hub has the event, the hub's write round starts, and ends (every client's
socket has it); then the clients' arrival times.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web

from app.adapters.sqlite_store import SqliteStore
from app.application import create_app
from app.core.events import OrderEvent
from app.execution.worker import SymbolWorker
from app.push.hub import PushHub
from app.settings import Settings
from bench.__main__ import HERE, Child
from tests.service_process import free_port, rest_url_of

STAGES = ("worker", "commit start", "commit end", "hub", "writes start", "writes end")
stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
_frame: dict[str, float] = {}  # the fill in flight: its frame's receive time


def _mark(stage: str, received: float | None) -> None:
    if received is not None:
        stages[stage].append(time.time() - received)


def _instrument() -> None:
    process, apply = SymbolWorker._process, SqliteStore.apply
    dispatch, flush = PushHub._dispatch, PushHub._flush

    async def timed_process(self: SymbolWorker, commands: list[Any]) -> bool:
        quotes = [command.received_at for command in commands if hasattr(command, "received_at")]
        if quotes:
            _frame["received"] = quotes[0]
            _mark("worker", quotes[0])
        return await process(self, commands)

    async def timed_apply(self: SqliteStore, changes: Sequence[Any], *args: Any, **kw: Any) -> None:
        filling = any(change.new_fills for change in changes)
        received = _frame.get("received") if filling else None
        _mark("commit start", received)
        await apply(self, changes, *args, **kw)
        _mark("commit end", received)

    def timed_dispatch(self: PushHub, event: OrderEvent) -> int:
        if event.fill is not None:
            _frame["pushed"] = event.fill.ts_us / 1e6
            _mark("hub", _frame["pushed"])
        return dispatch(self, event)

    def timed_flush(self: PushHub) -> None:
        received = _frame.pop("pushed", None)
        _mark("writes start", received)
        flush(self)
        _mark("writes end", received)

    SymbolWorker._process = timed_process  # type: ignore[method-assign]
    SqliteStore.apply = timed_apply  # type: ignore[method-assign]
    PushHub._dispatch = timed_dispatch  # type: ignore[method-assign]
    PushHub._flush = timed_flush  # type: ignore[method-assign]


def _read(path: Path) -> list[float]:
    return sorted(orjson.loads(path.read_bytes()))


async def main(clients: int, fills: int) -> None:
    _instrument()
    emulator = await Child.start(str(HERE / "emulator_proc.py"))
    url = await emulator.line()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        settings = Settings.model_validate({
            "http_port": port, "database_path": Path(folder) / "push.db", "binance_ws_url": url,
            "binance_rest_url": rest_url_of(url),
            "rate_limit_per_s": 0, "ws_max_connections_per_owner": clients + 10,
        })  # fmt: skip
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        output = Path(folder) / "latencies.json"
        args = ("127.0.0.1", str(port), str(clients), str(fills), str(output))
        watchers = await Child.start(str(HERE / "push_clients.py"), *args)
        try:
            assert await watchers.line() == "ready"
            async with aiohttp.ClientSession() as session:
                for n in range(1, fills + 1):
                    body = {"symbol": "PUSHUSDT", "order_size": "1", "price": "1"}
                    async with session.post(f"http://127.0.0.1:{port}/order/limit", json=body):
                        pass
                    assert await watchers.line() == f"accepted {n}"
                    if n == 1:
                        await emulator.send("wait pushusdt@bookTicker 0")
                    await emulator.send(f"quote pushusdt@bookTicker PUSHUSDT {1 + n / 1000}")
                    assert await watchers.line() == f"fill {n}"
                    assert await watchers.line() == f"filled {n}"
            assert await watchers.line() == "written"
            arrivals = _read(output)
        finally:
            await watchers.stop()
            await runner.cleanup()
            await emulator.stop()
    print(f"{clients} clients, {fills} fills; ms since the frame's receive (median, p90):")
    for stage, times in stages.items():
        ordered = sorted(times)
        print(f"  {stage:>13}: {statistics.median(ordered) * 1e3:7.3f}  {ordered[int(len(ordered) * 0.9)] * 1e3:7.3f}")  # fmt: skip
    print(f"  {'clients have it':>13}: {statistics.median(arrivals):7.3f}  {arrivals[int(len(arrivals) * 0.9)]:7.3f}  (p99 {arrivals[int(len(arrivals) * 0.99)]:.3f})")  # fmt: skip


if __name__ == "__main__":
    from app.__main__ import install_uvloop

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    install_uvloop(wanted=True)
    arguments = [int(value) for value in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [100, 50][len(arguments) :])))
