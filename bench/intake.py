"""Order intake at the service's default log level, layer by layer.

    python -m bench.intake [SECONDS] [ROUNDS]

Each round loads, one after the other and under the same wrk load (`bench/post.lua`,
64 connections): the bare aiohttp handler (`bench/bare_server.py`), the service cut after
its HTTP layer and after its order service (`bench/intake_stages.py`), and the whole
service, `python -m app`, durable in SQLite before each 202. The service runs as deployed:
LOG_LEVEL=info, JSON log lines (one `order.accepted` line per order) written to a file.
Only the per-owner limits are off (RATE_LIMIT_PER_S=0, MAX_OPEN_ORDERS=0): one owner
sends every request. Orders are checked against exchange info (EXCHANGE_FILTERS=on, the
default) read from an emulator in this process, never from Binance.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.emulator.server import BinanceEmulator
from bench.__main__ import HERE, ROOT, Child, _load, _more_files, _wait_http
from tests.service_process import free_port

LAYERS = (
    ("http", "+ HTTP layer (token, rate limit, JSON, validation, the answer)"),
    ("service", "+ order service (the order, its `accepted` event, the symbol worker)"),
    ("durable", "+ durability (committed to SQLite before the 202)"),
)


def _cpu_s(pid: int) -> float:
    """CPU time (user + system, every thread) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measured_load(pid: int, url: str, seconds: float) -> dict[str, Any]:
    """wrk's numbers, and the CPU the server spent per request (on a shared, noisy machine
    that varies less than throughput does: other processes take turns, not CPU time)."""
    cpu = _cpu_s(pid)
    result = await _load(url, seconds)
    result["cpu_us"] = (_cpu_s(pid) - cpu) / max(1, result["requests"]) * 1e6
    return result


async def _bare(seconds: float) -> dict[str, Any]:
    port = free_port()
    bare = await Child.start(str(HERE / "bare_server.py"), str(port))
    try:
        await _wait_http(f"http://127.0.0.1:{port}/")
        url = f"http://127.0.0.1:{port}/order/limit"
        return await _measured_load(bare.process.pid, url, seconds)
    finally:
        await bare.stop()


async def _service(
    command: tuple[str, ...], folder: Path, seconds: float, rest_url: str, log_level: str = "info"
) -> dict[str, Any]:
    """The service as `python -m app` runs it by default, its log lines going to a file."""
    port = free_port()
    log_path = folder / "service.log"
    with log_path.open("wb") as log_file:
        env = {
            "HTTP_PORT": str(port), "DATABASE_PATH": str(folder / "intake.db"),
            "LOG_LEVEL": log_level, "LOG_FORMAT": "json",
            "BINANCE_WS_URL": "ws://127.0.0.1:9",  # no market data needed: no fills
            "BINANCE_REST_URL": rest_url,  # exchange info: the emulator's
            "RATE_LIMIT_PER_S": "0", "MAX_OPEN_ORDERS": "0",
        }  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=log_file, env={**os.environ, **env},
            cwd=ROOT, preexec_fn=_more_files,
        )  # fmt: skip
        service = Child(process)
        try:
            await _wait_http(f"http://127.0.0.1:{port}/readyz")
            url = f"http://127.0.0.1:{port}/order/limit"
            result = await _measured_load(process.pid, url, seconds)
        finally:
            await service.stop()
    result["log_lines"] = log_path.read_bytes().count(b'"order.accepted"')
    return result


async def intake_round(seconds: float) -> dict[str, Any]:
    """One round: bare, each cut stage, the whole service (default log level)."""
    round_: dict[str, Any] = {"bare": await _bare(seconds)}
    exchange = BinanceEmulator()  # exchange info only: BENCHUSDT listed, permissive
    exchange.list_every_symbol = True
    await exchange.start()
    try:
        for stage in ("http", "service"):
            with tempfile.TemporaryDirectory() as folder:
                round_[stage] = await _service(
                    ("-m", "bench.intake_stages", stage), Path(folder), seconds, exchange.rest_url
                )
        with tempfile.TemporaryDirectory() as folder:
            round_["durable"] = await _service(
                ("-m", "app"), Path(folder), seconds, exchange.rest_url
            )
            database = Path(folder) / "intake.db"
            with sqlite3.connect(database) as db:
                round_["stored"] = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    finally:
        await exchange.stop()
    round_["accepted"] = round_["durable"]["statuses"].get("202", 0)
    round_["ratio"] = round_["durable"]["rps"] / round_["bare"]["rps"]
    return round_


def layer_table(round_: dict[str, Any]) -> list[dict[str, Any]]:
    """µs per request at each cut: 1 / throughput (the event loop is saturated), and the
    server's CPU time per request (steadier on a shared machine)."""
    rows = []
    previous_us = previous_cpu = 0.0
    for stage, name in (("bare", "bare aiohttp handler"), *LAYERS):
        result = round_[stage]
        us, cpu = 1e6 / result["rps"], result["cpu_us"]
        row = {"layer": name, "rps": result["rps"], "us": us, "cpu_us": cpu}
        if stage != "bare":
            row |= {"added_us": us - previous_us, "added_cpu_us": cpu - previous_cpu}
        rows.append(row)
        previous_us, previous_cpu = us, cpu
    return rows


async def run_intake(seconds: float, rounds: int = 1) -> dict[str, Any]:
    """Bare rps, the service's rps at the default log level, stored count, p50/p99 and the
    layer table; with several rounds, the round with the median ratio (all ratios kept)."""
    results = [await intake_round(seconds) for _ in range(rounds)]
    ratios = [r["ratio"] for r in results]
    median = sorted(results, key=lambda r: r["ratio"])[len(results) // 2]
    service = median["durable"]
    return {
        "bare_rps": median["bare"]["rps"],
        "bare_p50_ms": median["bare"]["p50_ms"],
        "bare_p99_ms": median["bare"]["p99_ms"],
        "bare_cpu_us": median["bare"]["cpu_us"],
        "service_rps": service["rps"],
        "p50_ms": service["p50_ms"],
        "p99_ms": service["p99_ms"],
        "service_cpu_us": service["cpu_us"],
        "ratio": median["ratio"],
        "ratios": ratios,
        "ratio_median": statistics.median(ratios),
        "accepted": median["accepted"],
        "stored": median["stored"],
        "log_lines": service["log_lines"],
        "log_level": "info",
        "layers": layer_table(median),
    }


def _print(result: dict[str, Any]) -> None:
    print(f"bare     {result['bare_rps']:8.0f} req/s  p50 {result['bare_p50_ms']:.1f} ms  "
          f"p99 {result['bare_p99_ms']:.1f} ms  CPU {result['bare_cpu_us']:.0f} µs/req")  # fmt: skip
    print(f"service  {result['service_rps']:8.0f} req/s  p50 {result['p50_ms']:.1f} ms  "
          f"p99 {result['p99_ms']:.1f} ms  CPU {result['service_cpu_us']:.0f} µs/req "
          "(LOG_LEVEL=info, JSON)")  # fmt: skip
    ratios = ", ".join(f"{r:.2f}" for r in result["ratios"])
    print(f"ratio    {result['ratio']:.2f}  (median of [{ratios}])")
    print(f"{result['accepted']} answered 202, {result['stored']} stored, "
          f"{result['log_lines']} order.accepted log lines")  # fmt: skip
    print(f"  {'layers running':<70} {'req/s':>7} {'µs/req':>7} {'added':>6} "
          f"{'CPU µs/req':>10} {'added':>6}")  # fmt: skip
    for row in result["layers"]:
        added = f"{row['added_us']:+6.0f}" if "added_us" in row else " " * 6
        added_cpu = f"{row['added_cpu_us']:+6.0f}" if "added_cpu_us" in row else ""
        print(f"  {row['layer']:<70} {row['rps']:7.0f} {row['us']:7.0f} {added} "
              f"{row['cpu_us']:10.0f} {added_cpu}")  # fmt: skip


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    _print(asyncio.run(run_intake(seconds, rounds)))
