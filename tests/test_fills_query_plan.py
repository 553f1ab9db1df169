"""SQLite reads an owner's fills page as one index range, newest first: no sort, whatever
the owner's history (what only SQLite's planner can show; the port's contract is in
tests/contracts/test_store_port.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.adapters.sql_rows import fills_query
from app.adapters.sqlite_store import SqliteStore


@pytest.mark.parametrize(
    ("symbol", "cursor"), [(None, None), (None, 7), ("BTCUSDT", None), ("BTCUSDT", 7)]
)
async def test_a_fills_page_is_one_index_range_without_a_sort(
    tmp_path: Path, symbol: str | None, cursor: int | None
) -> None:
    store = await SqliteStore.open(tmp_path / "orders.db")
    await store.close()
    db = sqlite3.connect(tmp_path / "orders.db")
    query, params = fills_query("alice", symbol, 50, cursor, lambda n: "?")
    plan = " ".join(str(row[3]) for row in db.execute(f"EXPLAIN QUERY PLAN {query}", params))
    assert "USING INDEX fills_by_owner (owner=? AND id<?)" in plan or (
        cursor is None and "USING INDEX fills_by_owner (owner=?)" in plan
    ), plan
    assert "TEMP B-TREE" not in plan, plan
