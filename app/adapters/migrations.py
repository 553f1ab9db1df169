"""Versioned schema: migration N brings `PRAGMA user_version` from N-1 to N."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
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
)


def migrate(db: sqlite3.Connection) -> int:
    """Apply every migration newer than the database; return the resulting version."""
    row = db.execute("PRAGMA user_version").fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this service "
            f"({len(MIGRATIONS)}); refusing to touch it"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; the whole migration then runs in one transaction.
        db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)
