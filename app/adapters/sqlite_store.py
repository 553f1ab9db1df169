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

from app.adapters.migrations import migrate
from app.adapters.sql_rows import (
    ACCOUNT_QUERY,
    BALANCE_UPSERT_TAIL,
    FILL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_WIDTH,
    ORDER_WITH_FILLS,
    POSITION_COLUMNS,
    POSITION_UPSERT_TAIL,
    account_from_rows,
    balance_rows,
    fill_row,
    list_query,
    order_from_row,
    order_row,
    order_with_fills,
    page_of,
    position_from_row,
    position_rows,
)
from app.clock import now_us
from app.core.account import (
    AssetBalance,
    InsufficientBalance,
    OpeningBalances,
    OwnerDelta,
    add_owner_deltas,
)
from app.core.decimals import fmt
from app.core.domain import Level, MarketState, OrderStatus
from app.core.events import OrderEvent
from app.core.order import Order
from app.core.positions import PositionRow
from app.ports import (
    AccountState,
    DuplicateClientOrderId,
    Fence,
    OrderChange,
    OrderPage,
    PositionUpdate,
    StoreConflict,
    StoreError,
    StoreUnavailable,
)

log = structlog.get_logger(__name__)

_INSERT_ORDER = f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({', '.join('?' * ORDER_WIDTH)})"
_INSERT_FILLS = f"INSERT INTO fills ({FILL_COLUMNS}) VALUES ({', '.join('?' * 8)})"
_UPSERT_POSITION = (
    f"INSERT INTO positions (owner, symbol, {POSITION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    f"{POSITION_UPSERT_TAIL}"
)
_OPEN = (OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value)

WriteFn = Callable[[sqlite3.Connection], None]  # runs on the writer thread


def _new_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class _Write:
    run: WriteFn
    done: asyncio.Future[None] = field(default_factory=_new_future)
    # A new order's row: inserted with the other new orders next to it, in one call,
    # then its balances accepted (its owner's, as `_accept_balances` takes them).
    order_row: tuple[Any, ...] | None = None
    accept: tuple[str, OpeningBalances] | None = None


def _run_plainly(db: sqlite3.Connection, writes: list[_Write]) -> None:
    """Every write in order; new orders next to each other in one `executemany` (its loop
    runs in C: no Python frame per row while the event loop's thread waits for the GIL)."""
    new_orders: list[tuple[Any, ...]] = []
    accepts: list[tuple[str, OpeningBalances]] = []

    def insert_new_orders() -> None:
        db.executemany(_INSERT_ORDER, new_orders)
        if accepts:
            _accept_many(db, accepts)
        new_orders.clear()
        accepts.clear()

    for write in writes:
        if write.order_row is not None:
            new_orders.append(write.order_row)
            if write.accept is not None:
                accepts.append(write.accept)
            continue
        if new_orders:
            insert_new_orders()
        write.run(db)
    if new_orders:
        insert_new_orders()


def _ledger_rows(state: MarketState) -> list[tuple[str, str, str, str]]:
    return [
        (state.symbol, book_side, fmt(price), fmt(taken))
        for book_side, levels in (("asks", state.asks), ("bids", state.bids))
        for price, taken in levels
    ]


def _write_market_state(db: sqlite3.Connection, state: MarketState) -> None:
    db.execute("DELETE FROM ledger WHERE symbol = ?", (state.symbol,))
    db.executemany(
        "INSERT INTO ledger (symbol, book_side, price, taken) VALUES (?, ?, ?, ?)",
        _ledger_rows(state),
    )
    db.execute(
        "INSERT INTO market_state (symbol, last_update_id) VALUES (?, ?) "
        "ON CONFLICT (symbol) DO UPDATE SET last_update_id = excluded.last_update_id",
        (state.symbol, state.last_update_id),
    )


_WRITE_REFUSED = (
    sqlite3.IntegrityError, StoreConflict, DuplicateClientOrderId, InsufficientBalance,
)  # fmt: skip
_KEYS_PER_READ = 400  # (owner, asset) pairs per balance read: 800 variables, well in bounds


def _read_balances(
    db: sqlite3.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], AssetBalance]:
    """The balance rows of these (owner, asset) keys that exist."""
    rows: dict[tuple[str, str], AssetBalance] = {}
    for start in range(0, len(keys), _KEYS_PER_READ):
        chunk = keys[start : start + _KEYS_PER_READ]
        values = ", ".join("(?, ?)" for _ in chunk)
        for owner, asset, free, locked in db.execute(
            "SELECT owner, asset, free, locked FROM balances "
            f"WHERE (owner, asset) IN (VALUES {values})",
            [part for key in chunk for part in key],
        ):
            rows[owner, asset] = AssetBalance(Decimal(free), Decimal(locked))
    return rows


def _write_balances(db: sqlite3.Connection, rows: dict[tuple[str, str], AssetBalance]) -> None:
    db.executemany(
        f"INSERT INTO balances (owner, asset, free, locked) VALUES (?, ?, ?, ?) "
        f"{BALANCE_UPSERT_TAIL}",
        balance_rows(rows),
    )


def _accept_balances(db: sqlite3.Connection, owner: str, balances: OpeningBalances) -> None:
    """On the writer thread, inside its transaction (no other writer can come between the
    read and the write): seed a new owner, check, apply. May raise InsufficientBalance."""
    new_owner = (
        db.execute(
            "INSERT INTO accounts (owner, created_at_us) VALUES (?, ?) "
            "ON CONFLICT (owner) DO NOTHING",
            (owner, now_us()),
        ).rowcount
        == 1
    )
    rows = _read_balances(db, [(owner, asset) for asset in balances.assets()])
    _write_balances(db, balances.rows_after(owner, rows, new_owner=new_owner))


def _accept_many(db: sqlite3.Connection, accepts: list[tuple[str, OpeningBalances]]) -> None:
    """`_accept_balances` for several orders, in their order, with one read and one write
    of the rows they touch (a refusal raises, and the batch is run again write by write)."""
    owners = sorted({owner for owner, _ in accepts})
    seen: set[str] = set()
    for start in range(0, len(owners), _KEYS_PER_READ):
        chunk = owners[start : start + _KEYS_PER_READ]
        marks = ", ".join("?" * len(chunk))
        query = f"SELECT owner FROM accounts WHERE owner IN ({marks})"
        seen.update(row[0] for row in db.execute(query, chunk))
    now = now_us()
    db.executemany(
        "INSERT INTO accounts (owner, created_at_us) VALUES (?, ?)",
        [(owner, now) for owner in owners if owner not in seen],
    )
    keys = sorted({(owner, asset) for owner, balances in accepts for asset in balances.assets()})
    rows = _read_balances(db, keys)
    changed: dict[tuple[str, str], AssetBalance] = {}
    for owner, balances in accepts:
        after = balances.rows_after(owner, rows, new_owner=owner not in seen)
        seen.add(owner)
        rows.update(after)
        changed.update(after)
    _write_balances(db, changed)


def _apply_balances(db: sqlite3.Connection, deltas: Sequence[OwnerDelta]) -> None:
    keys = sorted({(delta.owner, delta.asset) for delta in deltas})
    _write_balances(db, add_owner_deltas(_read_balances(db, keys), deltas))


def _commit_batch(db: sqlite3.Connection, writes: list[_Write]) -> list[BaseException | None]:
    """On the writer thread: the whole batch in one transaction.

    Writes almost never fail one by one (only a duplicate client_order_id does), so the
    batch runs plainly first, new orders inserted together; if one write is refused, the
    transaction is rolled back and run again with a savepoint per write (each new order
    by itself), so the refusal undoes nothing but that write.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            _run_plainly(db, writes)
        except _WRITE_REFUSED:
            db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            outcomes = _run_each_in_a_savepoint(db, [write.run for write in writes])
        else:
            outcomes = [None] * len(writes)
        db.execute("COMMIT")
    except Exception as exc:  # the whole transaction is gone: fail every write in it
        if db.in_transaction:
            db.execute("ROLLBACK")
        failure = StoreUnavailable(f"database write failed: {exc}")
        return [failure] * len(writes)
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
        self._loop = asyncio.get_running_loop()
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

    async def _submit(
        self,
        run: WriteFn,
        order_row: tuple[Any, ...] | None = None,
        accept: tuple[str, OpeningBalances] | None = None,
    ) -> None:
        if self._closing:
            raise StoreError("the store is closing")
        write = _Write(run, self._loop.create_future(), order_row, accept)
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
            outcomes = await loop.run_in_executor(
                self._executor, _commit_batch, self._writer, batch
            )
            if any(isinstance(o, StoreUnavailable) for o in outcomes) and all(outcomes):
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

    async def insert_order(
        self,
        order: Order,
        events: Sequence[OrderEvent] = (),
        balances: OpeningBalances | None = None,
    ) -> None:
        # In process, events go out on the bus after the commit: no outbox here.
        row = order_row(order)

        def run(db: sqlite3.Connection) -> None:
            try:
                db.execute(_INSERT_ORDER, row)
            except sqlite3.IntegrityError as exc:
                if "client_order_id" in str(exc):
                    raise DuplicateClientOrderId(order.client_order_id) from exc
                raise
            if balances is not None:  # a refusal rolls the order back with it
                _accept_balances(db, order.owner, balances)

        # `run` inserts it alone (when a write of its batch is refused and each runs in
        # its own savepoint); otherwise the row goes in with its batch's other new orders.
        accept = None if balances is None else (order.owner, balances)
        await self._submit(run, order_row=row, accept=accept)

    async def apply(
        self,
        changes: Sequence[OrderChange],
        market: MarketState | None = None,
        events: Sequence[OrderEvent] = (),
        fence: Fence | None = None,
        balances: Sequence[OwnerDelta] = (),
        positions: Sequence[PositionUpdate] = (),
    ) -> None:
        # One process owns every symbol (no fence to check), and its bus publishes after
        # the commit (no outbox): `events` and `fence` are for stores shared by processes.
        fills = [
            fill_row(change.order.order_id, fill) for change in changes for fill in change.new_fills
        ]
        updates = [
            (change.order.status.value, fmt(change.order.filled_qty), fmt(change.order.notional),
             change.order.fill_count, change.order.reason, change.order.updated_at_us,
             fmt(change.order.fees), change.order.order_id)
            for change in changes
        ]  # fmt: skip
        position_updates = position_rows(positions)

        def run(db: sqlite3.Connection) -> None:
            if fills:
                try:
                    db.executemany(_INSERT_FILLS, fills)
                except sqlite3.IntegrityError as exc:
                    raise StoreConflict(
                        f"a fill is already stored or its order is unknown: {exc}"
                    ) from exc
            cursor = db.executemany(
                "UPDATE orders SET status = ?, filled_qty = ?, notional = ?, fill_count = ?, "
                "reason = ?, updated_at_us = ?, fees = ? "
                "WHERE order_id = ? AND status IN ('open', 'partially_filled')",
                updates,
            )
            if cursor.rowcount != len(updates):
                # A final order never changes again; refuse the whole batch instead.
                raise StoreConflict("an order in this change is unknown or already final")
            if market is not None:
                _write_market_state(db, market)
            if balances:
                _apply_balances(db, balances)
            if position_updates:
                db.executemany(_UPSERT_POSITION, position_updates)

        await self._submit(run)

    # -- reads --------------------------------------------------------------------------

    async def _one(self, where: str, params: tuple[Any, ...], with_fills: bool) -> Order | None:
        # Run and read to the end in one call on the reader's thread: a statement left open
        # between `execute` and `fetch*` while other reads interleave keeps the connection's
        # read transaction, and its snapshot, alive, so a busy reader (many cancels waiting
        # at once) would go on seeing the store as it was before their commits.
        if not with_fills:
            rows = await self._reader.execute_fetchall(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where}", params
            )
            row = next(iter(rows), None)
            return None if row is None else order_from_row(row)
        query = ORDER_WITH_FILLS.format(where=where)
        return order_with_fills(list(await self._reader.execute_fetchall(query, params)))

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        return await self._one("o.order_id = ?", (order_id,), with_fills)

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None:
        return await self._one(
            "o.owner = ? AND o.client_order_id = ?", (owner, client_order_id), with_fills=True
        )

    async def list_orders(
        self,
        owner: str,
        *,
        status: OrderStatus | None,
        symbol: str | None,
        limit: int,
        cursor: int | None,
    ) -> OrderPage:
        query, params = list_query(owner, status, symbol, limit, cursor, lambda n: "?")
        rows = list(await self._reader.execute_fetchall(query, params))  # as in `_one`
        return OrderPage(*page_of(rows, limit))

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        where, params = "status IN (?, ?)", list(_OPEN)
        if symbol is not None:
            where, params = f"symbol = ? AND {where}", [symbol, *_OPEN]
        async with self._reader.execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where} ORDER BY seq", params
        ) as cursor:
            rows = await cursor.fetchall()
        return [order_from_row(row) for row in rows]

    async def open_counts(self) -> dict[str, int]:
        """How many orders each owner has open (counted by the database, no order read)."""
        async with self._reader.execute(
            "SELECT owner, COUNT(*) FROM orders WHERE status IN (?, ?) GROUP BY owner", _OPEN
        ) as cursor:
            return {owner: count for owner, count in await cursor.fetchall()}

    async def market_state(self, symbol: str) -> MarketState | None:
        async with self._reader.execute(
            "SELECT m.last_update_id, l.book_side, l.price, l.taken FROM market_state m "
            "LEFT JOIN ledger l ON l.symbol = m.symbol WHERE m.symbol = ?",
            (symbol,),
        ) as cursor:
            rows = list(await cursor.fetchall())
        if not rows:
            return None
        sides: dict[str, list[Level]] = {"asks": [], "bids": []}
        for _, book_side, price, taken in rows:
            if book_side is not None:
                sides[book_side].append((Decimal(price), Decimal(taken)))
        return MarketState(symbol, rows[0][0], tuple(sides["asks"]), tuple(sides["bids"]))

    async def account(self, owner: str) -> AccountState:
        query = ACCOUNT_QUERY.format(owner="?")
        async with self._reader.execute(query, (owner, owner)) as cursor:
            return account_from_rows(list(await cursor.fetchall()))

    async def position(self, owner: str, symbol: str) -> PositionRow | None:
        async with self._reader.execute(
            f"SELECT {POSITION_COLUMNS} FROM positions WHERE owner = ? AND symbol = ?",
            (owner, symbol),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else position_from_row(row)

    async def ping(self) -> None:
        async with self._reader.execute("SELECT 1") as cursor:
            await cursor.fetchone()
