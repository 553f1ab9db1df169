"""Versioned schemas, one list per SQL dialect: migration N brings a database from N-1 to N.

SQLite keeps its version in `PRAGMA user_version` (`migrate`); PostgreSQL in a one-row
`schema_version` table (`migrate_postgres`), migrated under an advisory lock so that any
number of processes may start at once. Both keep decimals as TEXT (exact, and read back
`fmt`-equal) and times as integer microseconds, so the adapters share their row mapping.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core.account import OwnerDelta, open_order_locks
from app.core.assets import KNOWN_QUOTES
from app.core.decimals import fmt
from app.core.domain import Side


def _fee_asset_of_existing_orders() -> str:
    """SQL (both dialects) for an order row's fee asset, as `app.core.symbols.fee_asset`
    gives it: the base asset for a buy, the quote asset for a sell."""
    cases = [
        f"WHEN symbol LIKE '%{quote}' AND length(symbol) > {len(quote)} THEN "
        f"CASE WHEN side = 'buy' THEN substr(symbol, 1, length(symbol) - {len(quote)}) "
        f"ELSE '{quote}' END"
        for quote in KNOWN_QUOTES
    ]
    cases.append(
        "WHEN length(symbol) > 3 THEN CASE WHEN side = 'buy' "
        "THEN substr(symbol, 1, length(symbol) - 3) ELSE substr(symbol, length(symbol) - 2) END"
    )
    return "CASE " + " ".join(cases) + " ELSE CASE WHEN side = 'buy' THEN symbol ELSE '' END END"


_ORDER_TYPE_CHECKS = """
        type            TEXT    NOT NULL DEFAULT 'limit' CHECK (type IN ('limit', 'market')),
        time_in_force   TEXT    NOT NULL DEFAULT 'GTT' CHECK (time_in_force IN ('GTT', 'IOC',
                                    'FOK')),
        fees            TEXT    NOT NULL DEFAULT '0',
        fee_asset       TEXT    NOT NULL DEFAULT '',
        CHECK ((type = 'market') = (price IS NULL)),
        CHECK (type = 'limit' OR time_in_force = 'IOC')"""

_ORDER_INDEXES = """
    CREATE UNIQUE INDEX orders_by_client_order_id
        ON orders (owner, client_order_id) WHERE client_order_id IS NOT NULL;
    CREATE INDEX orders_by_owner ON orders (owner, seq);
    CREATE INDEX orders_by_owner_status ON orders (owner, status, seq);
    CREATE INDEX orders_by_owner_symbol ON orders (owner, symbol, seq);
    CREATE INDEX orders_open ON orders (seq) WHERE status IN ('open', 'partially_filled');
    CREATE INDEX orders_open_by_symbol ON orders (symbol, seq)
        WHERE status IN ('open', 'partially_filled');"""

# Both dialects: decimals as exact TEXT, `avg_entry` an exact fraction ("n/d").
_ACCOUNT_TABLES = """
    UPDATE orders SET reserve = '0' WHERE type = 'market' AND side = 'buy';
    CREATE TABLE accounts (
        owner         TEXT   PRIMARY KEY,
        created_at_us BIGINT NOT NULL
    );
    CREATE TABLE balances (
        owner  TEXT NOT NULL,
        asset  TEXT NOT NULL,
        free   TEXT NOT NULL,
        locked TEXT NOT NULL,
        PRIMARY KEY (owner, asset)
    );
    CREATE TABLE positions (
        owner       TEXT    NOT NULL,
        symbol      TEXT    NOT NULL,
        qty         TEXT    NOT NULL,
        avg_entry   TEXT,
        avg_rounded BOOLEAN NOT NULL,
        cash        TEXT    NOT NULL,
        fees        TEXT    NOT NULL,
        PRIMARY KEY (owner, symbol)
    );"""

# Fills carry their order's owner, symbol and side, so that an owner's fills are one
# index range, newest `id` first (GET /fills); a symbol is filtered along that range. No
# (owner, symbol, id) index: it would cost every fill insert about a fifth of its speed
# (measured in the README), for a filter the export rarely needs.
_FILL_INDEXES = """
    CREATE INDEX fills_by_owner ON fills (owner, id);"""
# Fills stored before `id` existed are numbered in the order they were made.
_FILLS_IN_ORDER = "ORDER BY f.ts_us, o.seq, f.seq"

# What an open order's lock is computed from (app.core.balances.locked_by).
_OPEN_ORDER_LOCKS = (
    "SELECT owner, symbol, side, order_size, price, filled_qty, notional, reserve "
    "FROM orders WHERE status IN ('open', 'partially_filled')"
)


@dataclass(frozen=True, slots=True)
class _StoredLock:
    """The fields of a stored open order that its lock depends on."""

    side: Side
    order_size: Decimal
    price: Decimal | None
    filled_qty: Decimal
    notional: Decimal
    reserve: Decimal | None


def _locks_of(rows: Iterable[Sequence[Any]]) -> list[OwnerDelta]:
    orders = []
    for owner, symbol, side, size, price, filled, notional, reserve in rows:
        order = _StoredLock(
            Side(side), Decimal(size), None if price is None else Decimal(price),
            Decimal(filled), Decimal(notional), None if reserve is None else Decimal(reserve),
        )  # fmt: skip
        orders.append((owner, symbol, order))
    return open_order_locks(orders)


def _seed_open_order_locks(db: sqlite3.Connection) -> None:
    """Orders open before balances were kept hold no lock: lock what each needs now (the
    balances table is new and empty), so their fills and ends balance out."""
    locks = _locks_of(db.execute(_OPEN_ORDER_LOCKS).fetchall())
    db.executemany(
        "INSERT INTO balances (owner, asset, free, locked) VALUES (?, ?, ?, ?)",
        [(d.owner, d.asset, fmt(d.free), fmt(d.locked)) for d in locks],
    )


async def _seed_open_order_locks_postgres(conn: Any) -> None:
    locks = _locks_of(await conn.fetch(_OPEN_ORDER_LOCKS))
    await conn.executemany(
        "INSERT INTO balances (owner, asset, free, locked) VALUES ($1, $2, $3, $4)",
        [(d.owner, d.asset, fmt(d.free), fmt(d.locked)) for d in locks],
    )


_V2_ORDER_COLUMNS = (
    "seq, order_id, owner, client_order_id, symbol, side, order_size, price, timeout_s, "
    "status, filled_qty, notional, fill_count, reason, created_at_us, updated_at_us, "
    "expires_at_us"
)

# -- SQLite --------------------------------------------------------------------------------

SQLITE_MIGRATIONS: tuple[str, ...] = (
    # 1: orders and fills. Decimals are TEXT (exact); times are integer microseconds.
    """
    CREATE TABLE orders (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id        TEXT    NOT NULL UNIQUE,
        owner           TEXT    NOT NULL,
        client_order_id TEXT,
        symbol          TEXT    NOT NULL,
        side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
        order_size      TEXT    NOT NULL,
        price           TEXT    NOT NULL,
        timeout_s       REAL    NOT NULL,
        status          TEXT    NOT NULL CHECK (status IN ('open', 'partially_filled',
                                    'filled', 'expired', 'cancelled', 'rejected')),
        filled_qty      TEXT    NOT NULL,
        notional        TEXT    NOT NULL,
        fill_count      INTEGER NOT NULL,
        reason          TEXT,
        created_at_us   INTEGER NOT NULL,
        updated_at_us   INTEGER NOT NULL,
        expires_at_us   INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX orders_by_client_order_id
        ON orders (owner, client_order_id) WHERE client_order_id IS NOT NULL;
    CREATE INDEX orders_by_owner ON orders (owner, seq);
    CREATE INDEX orders_by_owner_status ON orders (owner, status, seq);
    CREATE INDEX orders_by_owner_symbol ON orders (owner, symbol, seq);
    CREATE INDEX orders_open ON orders (seq) WHERE status IN ('open', 'partially_filled');
    CREATE TABLE fills (
        order_id  TEXT    NOT NULL REFERENCES orders (order_id),
        seq       INTEGER NOT NULL CHECK (seq >= 1),
        update_id INTEGER NOT NULL,
        price     TEXT    NOT NULL,
        qty       TEXT    NOT NULL,
        ts_us     INTEGER NOT NULL,
        PRIMARY KEY (order_id, seq)
    ) WITHOUT ROWID;
    """,
    # 2: what matching remembers per symbol (rules 1 and 3), written with the fills so that
    # liquidity taken before a restart is not taken again after it.
    """
    CREATE TABLE market_state (
        symbol         TEXT    PRIMARY KEY,
        last_update_id INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE ledger (
        symbol    TEXT NOT NULL,
        book_side TEXT NOT NULL CHECK (book_side IN ('asks', 'bids')),
        price     TEXT NOT NULL,
        taken     TEXT NOT NULL,
        PRIMARY KEY (symbol, book_side, price)
    ) WITHOUT ROWID;
    CREATE INDEX orders_open_by_symbol ON orders (symbol, seq)
        WHERE status IN ('open', 'partially_filled');
    """,
    # 3: the paper account's orders: market orders (no price), time in force, fees. SQLite
    # cannot drop NOT NULL from `price`, so `orders` is rebuilt (the documented way: a new
    # table, the rows copied, the old one dropped, the new one renamed; foreign keys are off
    # while migrating). Existing orders are limit GTT orders with no fee.
    f"""
    CREATE TABLE orders_v3 (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id        TEXT    NOT NULL UNIQUE,
        owner           TEXT    NOT NULL,
        client_order_id TEXT,
        symbol          TEXT    NOT NULL,
        side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
        order_size      TEXT    NOT NULL,
        price           TEXT,
        timeout_s       REAL    NOT NULL,
        status          TEXT    NOT NULL CHECK (status IN ('open', 'partially_filled',
                                    'filled', 'expired', 'cancelled', 'rejected')),
        filled_qty      TEXT    NOT NULL,
        notional        TEXT    NOT NULL,
        fill_count      INTEGER NOT NULL,
        reason          TEXT,
        created_at_us   INTEGER NOT NULL,
        updated_at_us   INTEGER NOT NULL,
        expires_at_us   INTEGER NOT NULL,{_ORDER_TYPE_CHECKS}
    );
    INSERT INTO orders_v3 ({_V2_ORDER_COLUMNS}, fee_asset)
        SELECT {_V2_ORDER_COLUMNS}, {_fee_asset_of_existing_orders()} FROM orders;
    DROP TABLE orders;
    ALTER TABLE orders_v3 RENAME TO orders;
    {_ORDER_INDEXES}
    ALTER TABLE fills ADD COLUMN fee TEXT NOT NULL DEFAULT '0';
    ALTER TABLE fills ADD COLUMN fee_asset TEXT NOT NULL DEFAULT '';
    UPDATE fills SET fee_asset = (
        SELECT o.fee_asset FROM orders o WHERE o.order_id = fills.order_id);
    """,
    # 4: the paper account's balances and positions (app/core/account.py), written in the
    # transaction of the order or fill that changes them. `accounts` marks each owner seen
    # (PAPER_BALANCES seeds an owner once); a market buy keeps the `reserve` it locked.
    # Orders still open lock what they need from here on (`_seed_open_order_locks`).
    f"""
    ALTER TABLE orders ADD COLUMN reserve TEXT;
    {_ACCOUNT_TABLES}
    """,
    # 5: the fills export (GET /fills). Each fill gets `id`, its place in the order fills
    # were stored (the export's cursor), and its order's owner, symbol and side. SQLite
    # cannot add such a column, so `fills` is rebuilt as a rowid table (AUTOINCREMENT: an
    # id is never reused); (order_id, seq) stays unique.
    f"""
    CREATE TABLE fills_v5 (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id  TEXT    NOT NULL REFERENCES orders (order_id),
        seq       INTEGER NOT NULL CHECK (seq >= 1),
        update_id INTEGER NOT NULL,
        price     TEXT    NOT NULL,
        qty       TEXT    NOT NULL,
        ts_us     INTEGER NOT NULL,
        fee       TEXT    NOT NULL DEFAULT '0',
        fee_asset TEXT    NOT NULL DEFAULT '',
        owner     TEXT    NOT NULL,
        symbol    TEXT    NOT NULL,
        side      TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
        UNIQUE (order_id, seq)
    );
    INSERT INTO fills_v5 (order_id, seq, update_id, price, qty, ts_us, fee, fee_asset,
                          owner, symbol, side)
        SELECT f.order_id, f.seq, f.update_id, f.price, f.qty, f.ts_us, f.fee, f.fee_asset,
               o.owner, o.symbol, o.side
        FROM fills f JOIN orders o ON o.order_id = f.order_id {_FILLS_IN_ORDER};
    DROP TABLE fills;
    ALTER TABLE fills_v5 RENAME TO fills;
    {_FILL_INDEXES}
    """,
)


# What a migration computes in Python, run in its transaction after its script.
SQLITE_STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {4: _seed_open_order_locks}

MIGRATIONS = SQLITE_MIGRATIONS  # the name the SQLite store and its tests have always used


def migrate(db: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; return the resulting version."""
    row = db.execute("PRAGMA user_version").fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this service "
            f"({len(MIGRATIONS)}); refusing to touch it"
        )
    if version == len(MIGRATIONS):
        return version
    # A migration may rebuild a table that others reference: foreign keys are off while
    # migrating (they cannot change inside a transaction) and checked before each commit.
    enforced = db.execute("PRAGMA foreign_keys").fetchone()[0]
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the migration then runs in one transaction.
            db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};")
            step = SQLITE_STEPS.get(number)
            if step is not None:
                step(db)
            if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                db.execute("ROLLBACK")
                raise RuntimeError(f"migration {number} broke a foreign key; rolled back")
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")
    return len(MIGRATIONS)


# -- PostgreSQL ----------------------------------------------------------------------------

POSTGRES_MIGRATIONS: tuple[str, ...] = (
    # 1: orders, fills and what matching remembers per symbol (SQLite's 1 and 2). Decimals
    # are TEXT (exact), times BIGINT microseconds; `seq` is the list cursor, as in SQLite.
    """
    CREATE TABLE orders (
        seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        order_id        TEXT    NOT NULL UNIQUE,
        owner           TEXT    NOT NULL,
        client_order_id TEXT,
        symbol          TEXT    NOT NULL,
        side            TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
        order_size      TEXT    NOT NULL,
        price           TEXT    NOT NULL,
        timeout_s       DOUBLE PRECISION NOT NULL,
        status          TEXT    NOT NULL CHECK (status IN ('open', 'partially_filled',
                                    'filled', 'expired', 'cancelled', 'rejected')),
        filled_qty      TEXT    NOT NULL,
        notional        TEXT    NOT NULL,
        fill_count      INTEGER NOT NULL,
        reason          TEXT,
        created_at_us   BIGINT  NOT NULL,
        updated_at_us   BIGINT  NOT NULL,
        expires_at_us   BIGINT  NOT NULL
    );
    CREATE UNIQUE INDEX orders_by_client_order_id
        ON orders (owner, client_order_id) WHERE client_order_id IS NOT NULL;
    CREATE INDEX orders_by_owner ON orders (owner, seq);
    CREATE INDEX orders_by_owner_status ON orders (owner, status, seq);
    CREATE INDEX orders_by_owner_symbol ON orders (owner, symbol, seq);
    CREATE INDEX orders_open ON orders (seq) WHERE status IN ('open', 'partially_filled');
    CREATE INDEX orders_open_by_symbol ON orders (symbol, seq)
        WHERE status IN ('open', 'partially_filled');
    CREATE TABLE fills (
        order_id  TEXT    NOT NULL REFERENCES orders (order_id),
        seq       INTEGER NOT NULL CHECK (seq >= 1),
        update_id BIGINT  NOT NULL,
        price     TEXT    NOT NULL,
        qty       TEXT    NOT NULL,
        ts_us     BIGINT  NOT NULL,
        PRIMARY KEY (order_id, seq)
    );
    CREATE TABLE market_state (
        symbol         TEXT   PRIMARY KEY,
        last_update_id BIGINT
    );
    CREATE TABLE ledger (
        symbol    TEXT NOT NULL,
        book_side TEXT NOT NULL CHECK (book_side IN ('asks', 'bids')),
        price     TEXT NOT NULL,
        taken     TEXT NOT NULL,
        PRIMARY KEY (symbol, book_side, price)
    );
    """,
    # 2: scale-out. Events committed with their changes wait in the outbox (encoded by
    # app.adapters.codec) until relayed, oldest id first; partitions of symbols are leased
    # to one executor at a time, and `epoch` numbers the leases so that writes are fenced.
    """
    CREATE TABLE outbox (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payload BYTEA  NOT NULL
    );
    CREATE TABLE partition_leases (
        partition  INTEGER     PRIMARY KEY,
        owner      TEXT        NOT NULL,
        epoch      BIGINT      NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    """,
    # 3: the paper account's orders, as SQLite's 3: market orders (no price), time in
    # force, fees. Existing orders are limit GTT orders with no fee.
    f"""
    ALTER TABLE orders ALTER COLUMN price DROP NOT NULL;
    ALTER TABLE orders
        ADD COLUMN type TEXT NOT NULL DEFAULT 'limit' CHECK (type IN ('limit', 'market')),
        ADD COLUMN time_in_force TEXT NOT NULL DEFAULT 'GTT'
            CHECK (time_in_force IN ('GTT', 'IOC', 'FOK')),
        ADD COLUMN fees TEXT NOT NULL DEFAULT '0',
        ADD COLUMN fee_asset TEXT NOT NULL DEFAULT '',
        ADD CHECK ((type = 'market') = (price IS NULL)),
        ADD CHECK (type = 'limit' OR time_in_force = 'IOC');
    UPDATE orders SET fee_asset = {_fee_asset_of_existing_orders()};
    ALTER TABLE fills ADD COLUMN fee TEXT NOT NULL DEFAULT '0',
        ADD COLUMN fee_asset TEXT NOT NULL DEFAULT '';
    UPDATE fills f SET fee_asset = o.fee_asset FROM orders o WHERE o.order_id = f.order_id;
    """,
    # 4: the paper account's balances and positions, as SQLite's 4.
    f"""
    ALTER TABLE orders ADD COLUMN reserve TEXT;
    {_ACCOUNT_TABLES}
    """,
    # 5: the fills export, as SQLite's 5: `id` (an identity from here on, numbering the
    # existing fills in the order they were made first), owner, symbol and side.
    f"""
    ALTER TABLE fills ADD COLUMN id BIGINT, ADD COLUMN owner TEXT, ADD COLUMN symbol TEXT,
        ADD COLUMN side TEXT;
    UPDATE fills AS f SET id = n.id, owner = n.owner, symbol = n.symbol, side = n.side
    FROM (SELECT f.order_id, f.seq, o.owner, o.symbol, o.side,
                 row_number() OVER ({_FILLS_IN_ORDER}) AS id
          FROM fills f JOIN orders o ON o.order_id = f.order_id) AS n
    WHERE f.order_id = n.order_id AND f.seq = n.seq;
    ALTER TABLE fills ALTER COLUMN id SET NOT NULL, ALTER COLUMN owner SET NOT NULL,
        ALTER COLUMN symbol SET NOT NULL, ALTER COLUMN side SET NOT NULL,
        ADD CHECK (side IN ('buy', 'sell'));
    ALTER TABLE fills ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
    SELECT setval(pg_get_serial_sequence('fills', 'id'),
                  (SELECT coalesce(max(id), 0) + 1 FROM fills), false);
    {_FILL_INDEXES}
    """,
)
POSTGRES_STEPS: dict[int, Callable[[Any], Awaitable[None]]] = {4: _seed_open_order_locks_postgres}

# Advisory lock keys (one 64-bit space per database): migrating, and relaying the outbox.
POSTGRES_MIGRATION_LOCK = 0x5452_4144_4530_0001
POSTGRES_RELAY_LOCK = 0x5452_4144_4530_0002


async def migrate_postgres(conn: Any) -> int:
    """Apply every PostgreSQL migration newer than the database on an asyncpg connection.

    All pending migrations run in one transaction (DDL is transactional in PostgreSQL)
    under `pg_advisory_xact_lock`: processes starting together queue on the lock, and each
    after the first finds the schema current and does nothing. Returns the version.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", POSTGRES_MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " single  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),"
            " version INTEGER NOT NULL)"
        )
        version = await conn.fetchval("SELECT version FROM schema_version")
        version = 0 if version is None else int(version)
        if version > len(POSTGRES_MIGRATIONS):
            raise RuntimeError(
                f"database schema version {version} is newer than this service "
                f"({len(POSTGRES_MIGRATIONS)}); refusing to touch it"
            )
        for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
            await conn.execute(script)
            step = POSTGRES_STEPS.get(number)
            if step is not None:
                await step(conn)
        if version < len(POSTGRES_MIGRATIONS):
            await conn.execute(
                "INSERT INTO schema_version (version) VALUES ($1) "
                "ON CONFLICT (single) DO UPDATE SET version = excluded.version",
                len(POSTGRES_MIGRATIONS),
            )
    return len(POSTGRES_MIGRATIONS)
