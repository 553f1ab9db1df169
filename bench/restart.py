"""Restart with many open orders: seconds from `python -m app` to `GET /readyz` 200.

The orders are written straight into a SQLite file built by the app's own migrations
(as a crash would leave them), spread over a few symbols, each symbol with a stored
market state and ledger (what was taken stays taken across a restart). The service then
starts against an emulator and the time to a 200 from `/readyz` is measured (with
`open_orders` in its body equal to what was stored, so every order was resumed).

    python -m bench.restart [open_orders]
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from app.adapters.migrations import migrate
from app.clock import now_us
from app.emulator.server import BinanceEmulator
from tests.service_process import free_port, rest_url_of

SYMBOLS = 20
LEDGER_LEVELS = 50  # taken quantities per side and symbol
ROOT = Path(__file__).resolve().parent.parent


def write_open_orders(path: Path, open_orders: int, symbols: int = SYMBOLS) -> None:
    """A database holding `open_orders` open orders, and a ledger for every symbol."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        migrate(db)
        created = now_us()
        expires = created + 3_600_000_000
        rows = []
        for n in range(open_orders):
            partly = n % 4 == 0
            rows.append((
                uuid.uuid4().hex, f"owner{n % 50}", None, f"SYM{n % symbols}USDT",
                "buy" if n % 2 else "sell", "1.5", f"{100 + n % 500}.25", 3600.0,
                "partially_filled" if partly else "open", "0.5" if partly else "0",
                "50.125" if partly else "0", 1 if partly else 0, None, created, created, expires,
            ))  # fmt: skip
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO orders (order_id, owner, client_order_id, symbol, side, order_size, "
            "price, timeout_s, status, filled_qty, notional, fill_count, reason, created_at_us, "
            "updated_at_us, expires_at_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        for s in range(symbols):
            symbol = f"SYM{s}USDT"
            db.execute(
                "INSERT INTO market_state (symbol, last_update_id) VALUES (?, ?)", (symbol, 1000)
            )
            db.executemany(
                "INSERT INTO ledger (symbol, book_side, price, taken) VALUES (?, ?, ?, ?)",
                [
                    (symbol, side, f"{100 + level}.5", "0.25")
                    for side in ("asks", "bids")
                    for level in range(LEDGER_LEVELS)
                ],
            )
        db.execute("COMMIT")
    finally:
        db.close()


async def _time_to_ready(database: Path, upstream: str, open_orders: int) -> float:
    port = free_port()
    env = {
        **os.environ,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "DATABASE_PATH": str(database),
        "BINANCE_WS_URL": upstream,
        "BINANCE_REST_URL": rest_url_of(upstream),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "warning",
    }
    url = f"http://127.0.0.1:{port}/readyz"
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", env=env, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(300), aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"service exited with {process.returncode}")
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            elapsed = time.perf_counter() - started
                            body = await response.json()
                            held = body["service"]["open_orders"]
                            if held != open_orders:
                                raise RuntimeError(f"ready with {held} of {open_orders} orders")
                            return elapsed
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)
    finally:
        process.terminate()
        await process.wait()


async def run_restart(open_orders: int, repeats: int = 3) -> dict[str, object]:
    """Seconds from process start to /readyz 200 with `open_orders` stored: the median of
    `repeats` starts (the machine is noisy), and the same for an empty database."""
    emulator = BinanceEmulator()
    upstream = await emulator.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            database = Path(tmp) / "restart.db"
            write_open_orders(database, open_orders)
            # The same start with nothing stored: what process start-up costs on its own.
            empty = Path(tmp) / "empty.db"
            write_open_orders(empty, 0)
            loaded, bare = [], []
            for _ in range(repeats):
                loaded.append(await _time_to_ready(database, upstream, open_orders))
                bare.append(await _time_to_ready(empty, upstream, 0))
    finally:
        await emulator.stop()
    return {
        "open_orders": open_orders,
        "seconds_to_ready": statistics.median(loaded),
        "empty_start_s": statistics.median(bare),
        "runs_s": loaded,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(asyncio.run(run_restart(count)))
