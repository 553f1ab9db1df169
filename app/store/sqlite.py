"""The embedded SQLite store: WAL, synchronous=FULL, group commit.

Writes from every caller are queued and a single writer task commits whatever has
queued up together in one transaction; each caller's await returns only after that
commit, so batching never weakens "durable before acknowledged". Each write runs in
its own savepoint, so one failing write (a duplicate client_order_id) does not undo
the others. The whole batch runs in one hop to the writer's own thread (one sqlite3
connection, only ever used there). Reads use a second connection (aiosqlite) and only
ever see committed data.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from app.decimals import fmt
from app.domain import OrderStatus, Side
from app.order import Fill, Order
from app.store.base import DuplicateClientOrderId, OrderChange, OrderPage, StoreError
from app.store.migrations import migrate

log = structlog.get_logger(__name__)

_ORDER_COLUMNS = (
    "order_id, owner, client_order_id, symbol, side, order_size, price, timeout_s, status, "
    "filled_qty, notional, fill_count, reason, created_at_us, updated_at_us, expires_at_us"
)
_INSERT_ORDER = f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({', '.join('?' * 16)})"
_OPEN = (OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value)

WriteFn = Callable[[sqlite3.Connection], None]  # runs on the writer thread


def _new_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class _Write:
    run: WriteFn
    done: asyncio.Future[None] = field(default_factory=_new_future)


def _order_row(order: Order) -> tuple[Any, ...]:
    return (
        order.order_id, order.owner, order.client_order_id, order.symbol, order.side.value,
        fmt(order.order_size), fmt(order.price), order.timeout_s, order.status.value,
        fmt(order.filled_qty), fmt(order.notional), order.fill_count, order.reason,
        order.created_at_us, order.updated_at_us, order.expires_at_us,
    )  # fmt: skip


def _order_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Order:
    return Order(
        order_id=row[0], owner=row[1], client_order_id=row[2], symbol=row[3],
        side=Side(row[4]), order_size=Decimal(row[5]), price=Decimal(row[6]),
        timeout_s=row[7], status=OrderStatus(row[8]), filled_qty=Decimal(row[9]),
        notional=Decimal(row[10]), fill_count=row[11], reason=row[12],
        created_at_us=row[13], updated_at_us=row[14], expires_at_us=row[15],
    )  # fmt: skip


_WRITE_REFUSED = (sqlite3.IntegrityError, StoreError, DuplicateClientOrderId)


def _commit_batch(db: sqlite3.Connection, runs: list[WriteFn]) -> list[BaseException | None]:
    """On the writer thread: the whole batch in one transaction.

    Writes almost never fail one by one (only a duplicate client_order_id does), so the
    batch runs plainly first; if one write is refused, the transaction is rolled back and
    run again with a savepoint per write, so the refusal undoes nothing but that write.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            for run in runs:
                run(db)
        except _WRITE_REFUSED:
            db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            outcomes = _run_each_in_a_savepoint(db, runs)
        else:
            outcomes = [None] * len(runs)
        db.execute("COMMIT")
    except Exception as exc:  # the whole transaction is gone: fail every write in it
        if db.in_transaction:
            db.execute("ROLLBACK")
        failure = StoreError(f"database write failed: {exc}")
        return [failure] * len(runs)
    return outcomes


def _run_each_in_a_savepoint(
    db: sqlite3.Connection, runs: list[WriteFn]
) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []
    for run in runs:
        db.execute("SAVEPOINT write")
        try:
            run(db)
        except _WRITE_REFUSED as exc:
            db.execute("ROLLBACK TO write")
            outcomes.append(exc)
        else:
            outcomes.append(None)
        db.execute("RELEASE write")
    return outcomes


class SqliteStore:
    def __init__(
        self, writer: sqlite3.Connection, executor: ThreadPoolExecutor, reader: aiosqlite.Connection
    ) -> None:
        self._writer = writer
        self._executor = executor
        self._reader = reader
        self._queue: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-writer")
        self.commits = 0

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> SqliteStore:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        loop = asyncio.get_running_loop()

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            try:
                migrate(db)
            except BaseException:
                db.close()
                raise
            return db

        try:
            writer = await loop.run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        reader = await aiosqlite.connect(path, isolation_level=None)
        await reader.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await reader.execute("PRAGMA query_only = ON")
        return cls(writer, executor, reader)

    async def close(self) -> None:
        """Finish every queued write, then close both connections."""
        self._closing = True
        self._wakeup.set()
        await self._task
        await self._reader.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
        self._executor.shutdown(wait=True)

    # -- writes -------------------------------------------------------------------------

    async def _submit(self, run: WriteFn) -> None:
        if self._closing:
            raise StoreError("the store is closing")
        write = _Write(run)
        self._queue.append(write)
        self._wakeup.set()
        # A caller that gives up cancels only its own wait: the write stays queued and
        # runs with its batch all the same (the loop runs every queued write).
        await write.done

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            if not batch:
                if self._closing:
                    return
                continue
            runs = [write.run for write in batch]
            outcomes = await loop.run_in_executor(self._executor, _commit_batch, self._writer, runs)
            if any(isinstance(o, StoreError) for o in outcomes) and all(outcomes):
                log.error("store.commit_failed", error=str(outcomes[0]), writes=len(batch))
            else:
                self.commits += 1
            for write, outcome in zip(batch, outcomes, strict=True):
                if write.done.done():
                    continue
                if outcome is None:
                    write.done.set_result(None)
                else:
                    write.done.set_exception(outcome)

    async def insert_order(self, order: Order) -> None:
        row = _order_row(order)

        def run(db: sqlite3.Connection) -> None:
            try:
                db.execute(_INSERT_ORDER, row)
            except sqlite3.IntegrityError as exc:
                if "client_order_id" in str(exc):
                    raise DuplicateClientOrderId(order.client_order_id) from exc
                raise

        await self._submit(run)

    async def apply(self, changes: Sequence[OrderChange]) -> None:
        fills = [
            (change.order.order_id, fill.seq, fill.update_id, fmt(fill.price), fmt(fill.qty),
             fill.ts_us)
            for change in changes
            for fill in change.new_fills
        ]  # fmt: skip
        updates = [
            (change.order.status.value, fmt(change.order.filled_qty), fmt(change.order.notional),
             change.order.fill_count, change.order.reason, change.order.updated_at_us,
             change.order.order_id)
            for change in changes
        ]  # fmt: skip

        def run(db: sqlite3.Connection) -> None:
            if fills:
                try:
                    db.executemany(
                        "INSERT INTO fills (order_id, seq, update_id, price, qty, ts_us) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        fills,
                    )
                except sqlite3.IntegrityError as exc:
                    raise StoreError(
                        f"a fill is already stored or its order is unknown: {exc}"
                    ) from exc
            cursor = db.executemany(
                "UPDATE orders SET status = ?, filled_qty = ?, notional = ?, fill_count = ?, "
                "reason = ?, updated_at_us = ? "
                "WHERE order_id = ? AND status IN ('open', 'partially_filled')",
                updates,
            )
            if cursor.rowcount != len(updates):
                # A final order never changes again; refuse the whole batch instead.
                raise StoreError("an order in this change is unknown or already final")

        await self._submit(run)

    # -- reads --------------------------------------------------------------------------

    async def _fills(self, order_id: str) -> list[Fill]:
        async with self._reader.execute(
            "SELECT seq, update_id, price, qty, ts_us FROM fills WHERE order_id = ? ORDER BY seq",
            (order_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [Fill(r[0], r[1], Decimal(r[2]), Decimal(r[3]), r[4]) for r in rows]

    async def _one(self, where: str, params: tuple[Any, ...], with_fills: bool) -> Order | None:
        async with self._reader.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {where}", params
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        order = _order_from_row(row)
        if with_fills and order.fill_count:
            order.fills = await self._fills(order.order_id)
        return order

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        return await self._one("order_id = ?", (order_id,), with_fills)

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None:
        return await self._one(
            "owner = ? AND client_order_id = ?", (owner, client_order_id), with_fills=True
        )

    async def list(
        self,
        owner: str,
        *,
        status: OrderStatus | None,
        symbol: str | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        clauses, params = ["owner = ?"], [owner]
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if symbol is not None:
            clauses.append("symbol = ?")
            params.append(symbol)
        if cursor is not None:
            clauses.append("seq < ?")
            params.append(int(cursor))
        query = (
            f"SELECT seq, {_ORDER_COLUMNS} FROM orders WHERE {' AND '.join(clauses)} "
            "ORDER BY seq DESC LIMIT ?"
        )
        async with self._reader.execute(query, (*params, limit + 1)) as db_cursor:
            rows = list(await db_cursor.fetchall())
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return OrderPage([_order_from_row(row[1:]) for row in rows[:limit]], next_cursor)

    async def open_orders(self) -> list[Order]:
        async with self._reader.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status IN (?, ?) ORDER BY seq", _OPEN
        ) as cursor:
            rows = await cursor.fetchall()
        return [_order_from_row(row) for row in rows]

    async def ping(self) -> None:
        async with self._reader.execute("SELECT 1") as cursor:
            await cursor.fetchone()
