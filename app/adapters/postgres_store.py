"""The PostgreSQL store: one database shared by every api and executor process.

Implements three ports in one class, over one asyncpg pool:

- `OrderStore`, with the semantics of the SQLite store: decimals as TEXT (exact, read back
  `fmt`-equal), times as BIGINT microseconds, every write one transaction (all or
  nothing), and reads of an order with its fills in one statement (one snapshot).
- `Outbox`: the events of a write are inserted into `outbox` in the write's transaction,
  with a `pg_notify` that wakes relayers at its commit. `relay` publishes the oldest rows
  in id order and deletes them, in one transaction under a transaction-scoped advisory
  lock, so only one relayer publishes at a time (at least once: a crash after publishing
  and before the commit publishes those rows again). Ids are drawn before commit, so
  events of unrelated orders may be relayed out of commit order; one order's events never
  are: its writes serialize on its row lock, taken before the write's events are inserted.
- `PartitionLeases`: a lease per partition of symbols, timed by the database's clock
  (`now()`), numbered by `epoch`. A write with a `Fence` locks its lease row FOR SHARE and
  is refused whole (StoreFenced) unless owner and epoch still match; taking a lease over
  updates that row, so the two serialize and a paused former owner can never write after
  the new owner took the partition.

Epochs: `acquire` keeps the epoch only when the caller already holds a live lease (an
extension); every other acquisition (free, expired, released, or taken from another owner)
bumps it. `release` bumps it too and ends the lease at once, so writes fenced with the
released lease are refused from then on. Rows are never deleted, so epochs only grow.

Errors: lost or refused connections, timeouts, and server states a retry can get past
(shutdown, too many connections, serialization failures and deadlocks) are
StoreUnavailable; a duplicate (owner, client_order_id) is DuplicateClientOrderId; a write
contradicting what is stored is StoreConflict; anything else from the server is StoreError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from app.adapters.codec import DecodeError, decode_event, encode_event
from app.adapters.migrations import POSTGRES_RELAY_LOCK, migrate_postgres
from app.adapters.sql_rows import (
    ACCOUNT_QUERY,
    FILL_COLUMNS,
    FILL_WIDTH,
    ORDER_COLUMNS,
    ORDER_WIDTH,
    ORDER_WITH_FILLS,
    POSITION_COLUMNS,
    POSITION_UPSERT_TAIL,
    account_from_rows,
    balance_rows,
    fill_page_of,
    fill_row,
    fills_query,
    list_query,
    order_from_row,
    order_row,
    order_with_fills,
    page_of,
    position_from_row,
    position_rows,
)
from app.clock import now_us
from app.core.account import AssetBalance, OpeningBalances, OwnerDelta, add_owner_deltas
from app.core.decimals import fmt
from app.core.domain import Level, MarketState, OrderStatus
from app.core.events import OrderEvent
from app.core.order import Order
from app.core.positions import PositionRow
from app.ports import (
    AccountState,
    DuplicateClientOrderId,
    EventPublisher,
    Fence,
    FillPage,
    OrderChange,
    OrderPage,
    PositionUpdate,
    StoreConflict,
    StoreError,
    StoreFenced,
    StoreUnavailable,
)

log = structlog.get_logger(__name__)

OUTBOX_CHANNEL = "trade_outbox"

# Failures a retry may get past: the connection (lost, refused, timed out), the server
# (shutting down, out of connections), or the transaction (serialization, deadlock).
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes TimeoutError and ConnectionError
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a connection the server ended while it sat idle
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
)

_PLACEHOLDERS = ", ".join(f"${n}" for n in range(1, ORDER_WIDTH + 1))
_INSERT_ORDER = f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({_PLACEHOLDERS})"
_UPDATE_ORDERS = (
    "UPDATE orders AS o SET status = u.status, filled_qty = u.filled_qty, "
    "notional = u.notional, fill_count = u.fill_count, reason = u.reason, "
    "updated_at_us = u.updated_at_us, fees = u.fees "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], "
    "$7::bigint[], $8::text[]) AS u(order_id, status, filled_qty, notional, fill_count, "
    "reason, updated_at_us, fees) "
    "WHERE o.order_id = u.order_id AND o.status IN ('open', 'partially_filled')"
)
_INSERT_FILLS = (
    f"INSERT INTO fills ({FILL_COLUMNS}) "
    "SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[], "
    "$6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])"
)
_WRITE_MARKET_STATE = (
    "WITH cleared AS (DELETE FROM ledger WHERE symbol = $1) "
    "INSERT INTO market_state (symbol, last_update_id) VALUES ($1, $2) "
    "ON CONFLICT (symbol) DO UPDATE SET last_update_id = excluded.last_update_id"
)
_INSERT_LEDGER = (
    "INSERT INTO ledger (symbol, book_side, price, taken) "
    "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])"
)
# The events, in order (identity values follow the ORDER BY), and a wake-up for relayers:
# PostgreSQL delivers the notification at commit, and only if the transaction commits.
_INSERT_OUTBOX = (
    "WITH added AS (INSERT INTO outbox (payload) "
    "SELECT payload FROM unnest($1::bytea[]) WITH ORDINALITY AS e(payload, n) ORDER BY n) "
    "SELECT pg_notify($2, '')"
)
_CHECK_FENCE = "SELECT owner, epoch FROM partition_leases WHERE partition = $1 FOR SHARE"
# Free, expired or ours: take it. The epoch is kept only when extending a live lease of ours.
_ACQUIRE = (
    "INSERT INTO partition_leases AS l (partition, owner, epoch, expires_at) "
    "VALUES ($1, $2, 1, now() + make_interval(secs => $3::float8)) "
    "ON CONFLICT (partition) DO UPDATE SET owner = excluded.owner, "
    "epoch = CASE WHEN l.owner = excluded.owner AND l.expires_at > now() "
    "THEN l.epoch ELSE l.epoch + 1 END, expires_at = excluded.expires_at "
    "WHERE l.owner = excluded.owner OR l.expires_at <= now() "
    "RETURNING epoch"
)
_RENEW = (
    "UPDATE partition_leases SET expires_at = now() + make_interval(secs => $2::float8) "
    "WHERE owner = $1 AND expires_at > now() RETURNING partition, epoch"
)
_RELEASE = (
    "UPDATE partition_leases SET epoch = epoch + 1, expires_at = now() "
    "WHERE owner = $1 AND partition = ANY($2::int[]) AND expires_at > now()"
)
_HOLDERS = (
    "SELECT partition, owner, extract(epoch FROM expires_at - now())::float8 AS left_s "
    "FROM partition_leases WHERE expires_at > now() ORDER BY partition"
)


# Balance rows are locked in one order, (owner, asset) by code point ("C" collation, as
# Python sorts), so two writers never wait on each other in a cycle. A row must exist to
# be locked: missing ones are first inserted as zero, in that order too.
_ENSURE_BALANCES = (
    "INSERT INTO balances (owner, asset, free, locked) "
    "SELECT k.owner, k.asset, '0', '0' FROM unnest($1::text[], $2::text[]) "
    "WITH ORDINALITY AS k(owner, asset, n) ORDER BY k.n "
    "ON CONFLICT (owner, asset) DO NOTHING"
)
_LOCK_BALANCES = (
    "SELECT owner, asset, free, locked FROM balances "
    "WHERE (owner, asset) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
    'ORDER BY owner COLLATE "C", asset COLLATE "C" FOR UPDATE'
)
_UPDATE_BALANCES = (
    "UPDATE balances AS b SET free = u.free, locked = u.locked "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(owner, asset, free, locked) "
    "WHERE b.owner = u.owner AND b.asset = u.asset"
)
_UPSERT_POSITIONS = (
    f"INSERT INTO positions (owner, symbol, {POSITION_COLUMNS}) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], "
    f"$6::text[], $7::text[]) {POSITION_UPSERT_TAIL}"
)


async def _lock_balances(
    conn: Any, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], AssetBalance]:
    """Lock the balance rows of these (owner, asset) keys (sorted), made if missing."""
    owners, assets = [key[0] for key in keys], [key[1] for key in keys]
    await conn.execute(_ENSURE_BALANCES, owners, assets)
    return {
        (row[0], row[1]): AssetBalance(Decimal(row[2]), Decimal(row[3]))
        for row in await conn.fetch(_LOCK_BALANCES, owners, assets)
    }


async def _write_balances(conn: Any, rows: dict[tuple[str, str], AssetBalance]) -> None:
    if rows:
        await conn.execute(_UPDATE_BALANCES, *_columns(balance_rows(rows), 4))


async def _accept_balances(conn: Any, owner: str, balances: OpeningBalances) -> None:
    """In the order's transaction: seed a new owner, check, apply (InsufficientBalance
    rolls it all back). Concurrent first orders of one owner serialize on `accounts`."""
    new_owner = await conn.fetchval(
        "INSERT INTO accounts (owner, created_at_us) VALUES ($1, $2) "
        "ON CONFLICT (owner) DO NOTHING RETURNING true",
        owner, now_us(),
    )  # fmt: skip
    rows = await _lock_balances(conn, [(owner, asset) for asset in balances.assets()])
    await _write_balances(conn, balances.rows_after(owner, rows, new_owner=bool(new_owner)))


async def _apply_balances(conn: Any, deltas: Sequence[OwnerDelta]) -> None:
    keys = sorted({(delta.owner, delta.asset) for delta in deltas})
    await _write_balances(conn, add_owner_deltas(await _lock_balances(conn, keys), deltas))


class _PublishFailed(Exception):
    """Carries the publisher's own exception out of the transaction, unmapped."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column: what `unnest($1::t[], ...)` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


class PostgresStore:
    """OrderStore, Outbox and PartitionLeases on one PostgreSQL database (see the module)."""

    def __init__(self, pool: Any, url: str) -> None:
        self._pool = pool
        self._url = url
        self._listener: Any = None  # a dedicated connection LISTENing on OUTBOX_CHANNEL
        self._listen_lock = asyncio.Lock()
        self._notified = asyncio.Event()
        self._closed = False
        self.commits = 0

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        """Connect a pool to `url` and bring the schema up to date (safe concurrently)."""
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        except _TRANSIENT as exc:
            raise StoreUnavailable(f"cannot connect to the database: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await migrate_postgres(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _TRANSIENT):
                raise StoreUnavailable(f"cannot migrate the database: {exc}") from exc
            raise
        return cls(pool, url)

    async def close(self) -> None:
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(*_TRANSIENT):
                await listener.close(timeout=5)
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection; the driver's failures become the port's exceptions."""
        if self._closed:
            raise StoreError("the store is closed")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (StoreError, DuplicateClientOrderId, _PublishFailed):
            raise
        except _TRANSIENT as exc:
            if not isinstance(exc, asyncpg.TransactionRollbackError):
                # The connection failed; its pool mates likely did too (a server restart):
                # replace every pooled connection on its next use rather than fail on each.
                await self._pool.expire_connections()
            raise StoreUnavailable(f"database unavailable: {exc!r}") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"database error: {exc!r}") from exc

    # -- writes -------------------------------------------------------------------------

    async def insert_order(
        self,
        order: Order,
        events: Sequence[OrderEvent] = (),
        balances: OpeningBalances | None = None,
    ) -> None:
        row = order_row(order)
        async with self._connection() as conn:
            try:
                if events or balances is not None:
                    async with conn.transaction():
                        await conn.execute(_INSERT_ORDER, *row)
                        if balances is not None:
                            await _accept_balances(conn, order.owner, balances)
                        await _write_events(conn, events)
                else:
                    await conn.execute(_INSERT_ORDER, *row)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "orders_by_client_order_id":
                    raise DuplicateClientOrderId(order.client_order_id) from exc
                raise StoreConflict(f"order {order.order_id} is already stored") from exc
        self.commits += 1

    async def apply(
        self,
        changes: Sequence[OrderChange],
        market: MarketState | None = None,
        events: Sequence[OrderEvent] = (),
        fence: Fence | None = None,
        balances: Sequence[OwnerDelta] = (),
        positions: Sequence[PositionUpdate] = (),
    ) -> None:
        # One row per order (a change listed twice: its last state), sorted so that
        # writers touching several orders lock them in one order.
        latest = {change.order.order_id: change.order for change in changes}
        updates = [
            (order.order_id, order.status.value, fmt(order.filled_qty), fmt(order.notional),
             order.fill_count, order.reason, order.updated_at_us, fmt(order.fees))
            for _, order in sorted(latest.items())
        ]  # fmt: skip
        fills = [fill_row(change.order, fill) for change in changes for fill in change.new_fills]
        position_updates = position_rows(positions)
        async with self._connection() as conn, conn.transaction():
            if fence is not None:
                lease = await conn.fetchrow(_CHECK_FENCE, fence.partition)
                if lease is None or (lease["owner"], lease["epoch"]) != (fence.owner, fence.epoch):
                    raise StoreFenced(
                        f"partition {fence.partition} is no longer leased to {fence.owner} "
                        f"under epoch {fence.epoch}"
                    )
            if updates:
                status = await conn.execute(_UPDATE_ORDERS, *_columns(updates, 8))
                if int(status.rsplit(" ", 1)[-1]) != len(updates):
                    # A final order never changes again; refuse the whole write instead.
                    raise StoreConflict("an order in this change is unknown or already final")
            if fills:
                try:
                    await conn.execute(_INSERT_FILLS, *_columns(fills, FILL_WIDTH))
                except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as exc:
                    raise StoreConflict(
                        f"a fill is already stored or its order is unknown: {exc}"
                    ) from exc
            if market is not None:
                await _write_market_state(conn, market)
            if balances:
                await _apply_balances(conn, balances)
            if position_updates:
                await conn.execute(_UPSERT_POSITIONS, *_columns(position_updates, 7))
            await _write_events(conn, events)
        self.commits += 1

    # -- reads --------------------------------------------------------------------------

    async def _one(self, where: str, params: tuple[Any, ...], with_fills: bool) -> Order | None:
        async with self._connection() as conn:
            if not with_fills:
                row = await conn.fetchrow(
                    f"SELECT {ORDER_COLUMNS} FROM orders o WHERE {where}", *params
                )
                return None if row is None else order_from_row(row)
            rows = await conn.fetch(ORDER_WITH_FILLS.format(where=where), *params)
        return order_with_fills(rows)

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        return await self._one("o.order_id = $1", (order_id,), with_fills)

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None:
        return await self._one(
            "o.owner = $1 AND o.client_order_id = $2", (owner, client_order_id), with_fills=True
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
        query, params = list_query(owner, status, symbol, limit, cursor, lambda n: f"${n}")
        async with self._connection() as conn:
            rows = await conn.fetch(query, *params)
        return OrderPage(*page_of(rows, limit))

    async def list_fills(
        self, owner: str, *, symbol: str | None, limit: int, cursor: int | None
    ) -> FillPage:
        query, params = fills_query(owner, symbol, limit, cursor, lambda n: f"${n}")
        async with self._connection() as conn:
            rows = await conn.fetch(query, *params)
        return FillPage(*fill_page_of(rows, limit))

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        where, params = "status IN ('open', 'partially_filled')", []
        if symbol is not None:
            where, params = f"symbol = $1 AND {where}", [symbol]
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where} ORDER BY seq", *params
            )
        return [order_from_row(row) for row in rows]

    async def open_counts(self) -> dict[str, int]:
        """How many orders each owner has open (counted by the database, no order read)."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT owner, COUNT(*) FROM orders "
                "WHERE status IN ('open', 'partially_filled') GROUP BY owner"
            )
        return {row[0]: row[1] for row in rows}

    async def market_state(self, symbol: str) -> MarketState | None:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT m.last_update_id, l.book_side, l.price, l.taken FROM market_state m "
                "LEFT JOIN ledger l ON l.symbol = m.symbol WHERE m.symbol = $1",
                symbol,
            )
        if not rows:
            return None
        sides: dict[str, list[Level]] = {"asks": [], "bids": []}
        for _, book_side, price, taken in rows:
            if book_side is not None:
                sides[book_side].append((Decimal(price), Decimal(taken)))
        return MarketState(symbol, rows[0][0], tuple(sides["asks"]), tuple(sides["bids"]))

    async def account(self, owner: str) -> AccountState:
        async with self._connection() as conn:
            rows = await conn.fetch(ACCOUNT_QUERY.format(owner="$1"), owner)
        return account_from_rows(rows)

    async def position(self, owner: str, symbol: str) -> PositionRow | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {POSITION_COLUMNS} FROM positions WHERE owner = $1 AND symbol = $2",
                owner, symbol,
            )  # fmt: skip
        return None if row is None else position_from_row(row)

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    # -- the outbox ---------------------------------------------------------------------

    async def relay(self, publish: EventPublisher, limit: int = 500) -> int:
        """Publish the oldest waiting events in id order, then delete them, in one
        transaction. 0 if another relayer holds the relay lock or nothing waits. If
        `publish` raises, the rows stay (relayed later) and the exception propagates."""
        try:
            return await self._relay(publish, limit)
        except _PublishFailed as failed:  # rolled back: the rows wait for the next relay
            raise failed.cause from None

    async def _relay(self, publish: EventPublisher, limit: int) -> int:
        async with self._connection() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", POSTGRES_RELAY_LOCK):
                return 0
            rows = await conn.fetch(
                "SELECT id, payload FROM outbox ORDER BY id LIMIT $1 FOR UPDATE", limit
            )
            if not rows:
                return 0
            events: list[OrderEvent] = []
            for row in rows:
                try:
                    events.append(decode_event(row["payload"]))
                except DecodeError as exc:  # never publishable: dropped, not retried forever
                    log.error("outbox.undecodable_event", outbox_id=row["id"], error=str(exc))
            if events:
                try:
                    await publish(events)
                except Exception as exc:
                    raise _PublishFailed(exc) from exc
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
            )
        return len(rows)

    async def wait(self, timeout: float) -> None:
        """Return at the next commit with events (a NOTIFY), or after `timeout`.

        The first call (and the first after the listening connection was lost) only starts
        listening and returns at once: events committed before may be waiting."""
        if self._closed:
            raise StoreError("the store is closed")
        if self._listener is None:
            async with self._listen_lock:
                if self._listener is None:
                    try:
                        await self._listen()
                    except _TRANSIENT as exc:
                        log.warning("outbox.listen_failed", error=repr(exc))
                        await asyncio.sleep(timeout)
                        return
            return
        if not self._notified.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._notified.wait()
        self._notified.clear()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._url)

        def notified(*_: Any) -> None:
            self._notified.set()

        def lost(_: Any) -> None:
            if self._listener is conn:
                self._listener = None
            self._notified.set()  # let the waiter come back and listen again

        try:
            await conn.add_listener(OUTBOX_CHANNEL, notified)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(lost)
        self._notified.clear()
        self._listener = conn

    # -- partition leases ---------------------------------------------------------------

    async def acquire(self, partition: int, owner: str, ttl_s: float) -> int | None:
        async with self._connection() as conn:
            epoch = await conn.fetchval(_ACQUIRE, partition, owner, ttl_s)
        return None if epoch is None else int(epoch)

    async def renew(self, owner: str, ttl_s: float) -> dict[int, int]:
        async with self._connection() as conn:
            rows = await conn.fetch(_RENEW, owner, ttl_s)
        return {int(row["partition"]): int(row["epoch"]) for row in rows}

    async def release(self, owner: str, partitions: Sequence[int]) -> None:
        if not partitions:
            return
        async with self._connection() as conn:
            await conn.execute(_RELEASE, owner, list(partitions))

    async def holders(self) -> dict[int, tuple[str, float]]:
        async with self._connection() as conn:
            rows = await conn.fetch(_HOLDERS)
        return {int(row["partition"]): (row["owner"], float(row["left_s"])) for row in rows}


async def _write_market_state(conn: Any, state: MarketState) -> None:
    await conn.execute(_WRITE_MARKET_STATE, state.symbol, state.last_update_id)
    ledger = [
        (book_side, fmt(price), fmt(taken))
        for book_side, levels in (("asks", state.asks), ("bids", state.bids))
        for price, taken in levels
    ]
    if ledger:
        await conn.execute(_INSERT_LEDGER, state.symbol, *_columns(ledger, 3))


async def _write_events(conn: Any, events: Sequence[OrderEvent]) -> None:
    if events:
        await conn.execute(
            _INSERT_OUTBOX, [encode_event(event) for event in events], OUTBOX_CHANNEL
        )
