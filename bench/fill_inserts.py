"""What the fills export costs the fill writes: SQLite fill inserts, schema 4 against 5.

    python -m bench.fill_inserts [rounds]

Schema 4 keeps fills WITHOUT ROWID, keyed (order_id, seq); schema 5 (migration 5, for
GET /fills) adds `id` (AUTOINCREMENT), the order's owner, symbol and side, and the
(owner, id) index. The third row is schema 5 with an (owner, symbol, id) index as well, the
one left out. Each round inserts 6,000 fills on each schema in turn, in one process, as 300
transactions of 20 fills (one upstream update filling 20 orders), WAL, synchronous=FULL;
the ratios to schema 4 within each round, and their median over the rounds, are printed.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.adapters.migrations import SQLITE_MIGRATIONS

_ORDERS = 20
_COMMITS = 300
_OLD = (
    "INSERT INTO fills (order_id, seq, update_id, price, qty, ts_us, fee, fee_asset) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_NEW = (
    "INSERT INTO fills (order_id, seq, update_id, price, qty, ts_us, fee, fee_asset, owner, "
    "symbol, side) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SYMBOL_INDEX = "CREATE INDEX fills_by_owner_symbol ON fills (owner, symbol, id)"


def _open(path: Path, version: int, extra: str = "") -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    for script in SQLITE_MIGRATIONS[:version]:
        db.executescript(f"BEGIN; {script}; COMMIT;")
    if extra:
        db.execute(extra)
    db.executemany(
        "INSERT INTO orders (order_id, owner, symbol, side, order_size, price, timeout_s, "
        "status, filled_qty, notional, fill_count, created_at_us, updated_at_us, "
        "expires_at_us, fee_asset) VALUES (?, ?, 'BTCUSDT', 'sell', '1000000', '1', 30, "
        "'open', '0', '0', 0, 1, 1, 2, 'USDT')",
        [(f"{n:032x}", f"owner{n % 7}") for n in range(_ORDERS)],
    )
    return db


def _fills_per_s(db: sqlite3.Connection, *, new: bool) -> float:
    started = time.perf_counter()
    for update in range(1, _COMMITS + 1):
        rows = [
            (f"{n:032x}", update, 1000 + update, "61850.12", "0.00123", 1_764_000_000 + update,
             "0.0761", "USDT") + ((f"owner{n % 7}", "BTCUSDT", "sell") if new else ())
            for n in range(_ORDERS)
        ]  # fmt: skip
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_NEW if new else _OLD, rows)
        db.execute("COMMIT")
    return _ORDERS * _COMMITS / (time.perf_counter() - started)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    ratios: dict[str, list[float]] = {"schema 5": [], "schema 5 + (owner, symbol, id)": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            base = _fills_per_s(_open(Path(tmp) / "4.db", 4), new=False)
            five = _fills_per_s(_open(Path(tmp) / "5.db", 5), new=True)
            indexed = _fills_per_s(_open(Path(tmp) / "5i.db", 5, _SYMBOL_INDEX), new=True)
            base_again = _fills_per_s(_open(Path(tmp) / "4b.db", 4), new=False)
        baseline = (base + base_again) / 2  # around the two schema-5 runs
        ratios["schema 5"].append(five / baseline)
        ratios["schema 5 + (owner, symbol, id)"].append(indexed / baseline)
        print(f"schema 4 {baseline:,.0f} fills/s; " + ", ".join(
            f"{name} x{values[-1]:.2f}" for name, values in ratios.items()))  # fmt: skip
    for name, values in ratios.items():
        print(f"{name}: median x{statistics.median(values):.2f} of schema 4's fills/s")


if __name__ == "__main__":
    main()
