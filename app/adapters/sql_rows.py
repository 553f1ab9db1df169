"""What the SQL stores share: the order's columns, rows to and from objects, the list query.

SQLite and PostgreSQL hold the same tables (decimals as exact TEXT, times as integer
microseconds); only their placeholders differ (`?` and `$n`), so the list query takes a
function that makes the n-th one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from sys import intern
from typing import Any

from app.core.account import AssetBalance
from app.core.decimals import fmt
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.order import MAX_SHARED, NO_FILLS, Fill, Order
from app.core.positions import PositionRow
from app.ports import AccountState, OwnedFill, PositionUpdate

_SIDES = {side.value: side for side in Side}
_STATUSES = {status.value: status for status in OrderStatus}
_TYPES = {kind.value: kind for kind in OrderType}
_TIME_IN_FORCE = {tif.value: tif for tif in TimeInForce}
_parsed: dict[str, Decimal] = {}

ORDER_COLUMNS = (
    "order_id, owner, client_order_id, symbol, side, order_size, price, timeout_s, status, "
    "filled_qty, notional, fill_count, reason, created_at_us, updated_at_us, expires_at_us, "
    "type, time_in_force, fees, fee_asset, reserve"
)
ORDER_WIDTH = len(ORDER_COLUMNS.split(","))
# The columns an order's fills write (INSERT INTO fills (...)): Fill's, then its order's
# owner, symbol and side (for the fills export); `id` is the database's.
FILL_COLUMNS = "order_id, seq, update_id, price, qty, ts_us, fee, fee_asset, owner, symbol, side"
FILL_WIDTH = len(FILL_COLUMNS.split(","))
# An order and its fills in one statement: one statement reads one committed state, so a
# commit landing between "the order" and "its fills" cannot tear them apart.
ORDER_WITH_FILLS = (
    f"SELECT {', '.join('o.' + c.strip() for c in ORDER_COLUMNS.split(','))}, "
    "f.seq, f.update_id, f.price, f.qty, f.ts_us, f.fee, f.fee_asset "
    "FROM orders o LEFT JOIN fills f ON f.order_id = o.order_id WHERE {where} ORDER BY f.seq"
)
MAX_CURSOR = 2**63 - 1  # the largest seq either engine can hold


def order_row(order: Order) -> tuple[Any, ...]:
    return (
        order.order_id, order.owner, order.client_order_id, order.symbol, order.side.value,
        fmt(order.order_size), None if order.price is None else fmt(order.price),
        order.timeout_s, order.status.value, fmt(order.filled_qty), fmt(order.notional),
        order.fill_count, order.reason, order.created_at_us, order.updated_at_us,
        order.expires_at_us, order.type.value, order.time_in_force.value, fmt(order.fees),
        order.fee_asset, None if order.reserve is None else fmt(order.reserve),
    )  # fmt: skip


def fill_row(order: Order, fill: Fill) -> tuple[Any, ...]:
    """A fill of `order` as FILL_COLUMNS."""
    return (
        order.order_id, fill.seq, fill.update_id, fmt(fill.price), fmt(fill.qty), fill.ts_us,
        fmt(fill.fee), fill.fee_asset, order.owner, order.symbol, order.side.value,
    )  # fmt: skip


def order_from_row(row: Sequence[Any], start: int = 0) -> Order:
    """The order in `row[start:start + ORDER_WIDTH]`, in ORDER_COLUMNS' order.

    Positional, with the enums looked up in a dict: start-up recovery reads every open
    order this way (`Side(...)` alone costs more than a dict lookup several times over).
    Owner and symbol are interned: an order read back to rest (recovery, or a command
    from another process checked against the store) holds them as one object each."""
    (order_id, owner, client_order_id, symbol, side, order_size, price, timeout_s, status,
     filled_qty, notional, fill_count, reason, created_at_us, updated_at_us, expires_at_us,
     kind, time_in_force, fees, fee_asset, reserve) = row[start : start + ORDER_WIDTH]  # fmt: skip
    if updated_at_us == created_at_us:
        updated_at_us = created_at_us  # one int object, as in an order just accepted
    return Order(
        order_id, intern(owner), client_order_id, intern(symbol), _SIDES[side],
        _decimal(order_size), None if price is None else _decimal(price), timeout_s,
        _STATUSES[status], created_at_us, updated_at_us, expires_at_us, _decimal(filled_qty),
        _decimal(notional), fill_count, reason, NO_FILLS, _TYPES[kind],
        _TIME_IN_FORCE[time_in_force], _decimal(fees), intern(fee_asset),
        None if reserve is None else Decimal(reserve),
    )  # fmt: skip


def _decimal(text: str) -> Decimal:
    """The Decimal of a stored text, parsed once while it keeps coming back: open orders
    read at start-up share their sizes, prices and zeros (and a dict lookup is cheaper
    than a parse). Bounded like `shared_decimal`."""
    value = _parsed.get(text)
    if value is None:
        if len(_parsed) >= MAX_SHARED:
            _parsed.clear()
        value = _parsed[text] = Decimal(text)
    return value


def order_with_fills(rows: Sequence[Sequence[Any]]) -> Order | None:
    """The rows of ORDER_WITH_FILLS as one order with its fills (None: no such order)."""
    if not rows:
        return None
    order = order_from_row(rows[0])
    f = ORDER_WIDTH
    order.fills = [
        Fill(row[f], row[f + 1], Decimal(row[f + 2]), Decimal(row[f + 3]), row[f + 4],
             Decimal(row[f + 5]), row[f + 6])
        for row in rows
        if row[f] is not None
    ]  # fmt: skip
    return order


def list_query(
    owner: str,
    status: OrderStatus | None,
    symbol: str | None,
    limit: int,
    cursor: int | None,
    placeholder: Callable[[int], str],
) -> tuple[str, list[str | int]]:
    """An owner's orders, newest first, one more than `limit` (to know if a page follows);
    each row is `seq` then ORDER_COLUMNS."""
    clauses: list[str] = []
    params: list[str | int] = []
    for clause, value in (
        ("owner = ", owner),
        ("status = ", None if status is None else status.value),
        ("symbol = ", symbol),
        ("seq < ", None if cursor is None else min(cursor, MAX_CURSOR)),
    ):
        if value is not None:
            params.append(value)
            clauses.append(clause + placeholder(len(params)))
    params.append(limit + 1)
    query = (
        f"SELECT seq, {ORDER_COLUMNS} FROM orders WHERE {' AND '.join(clauses)} "
        f"ORDER BY seq DESC LIMIT {placeholder(len(params))}"
    )
    return query, params


def page_of(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[Order], str | None]:
    """The orders of a list query's rows, and the cursor of the next page, if any."""
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return [order_from_row(row, 1) for row in rows[:limit]], next_cursor


def fills_query(
    owner: str,
    symbol: str | None,
    limit: int,
    cursor: int | None,
    placeholder: Callable[[int], str],
) -> tuple[str, list[str | int]]:
    """An owner's fills, newest stored first (by `id`), one more than `limit` (to know if a
    page follows); each row is `id, order_id, symbol, side, seq, update_id, price, qty,
    ts_us, fee, fee_asset`. One range of fills_by_owner, the symbol filtered along it."""
    clauses: list[str] = []
    params: list[str | int] = []
    for clause, value in (
        ("owner = ", owner),
        ("symbol = ", symbol),
        ("id < ", None if cursor is None else min(cursor, MAX_CURSOR)),
    ):
        if value is not None:
            params.append(value)
            clauses.append(clause + placeholder(len(params)))
    params.append(limit + 1)
    query = (
        "SELECT id, order_id, symbol, side, seq, update_id, price, qty, ts_us, fee, fee_asset "
        f"FROM fills WHERE {' AND '.join(clauses)} "
        f"ORDER BY id DESC LIMIT {placeholder(len(params))}"
    )
    return query, params


def fill_page_of(rows: Sequence[Sequence[Any]], limit: int) -> tuple[list[OwnedFill], str | None]:
    """The fills of a fills query's rows, and the cursor of the next page, if any."""
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return [
        OwnedFill(order_id, symbol, _SIDES[side],
                  Fill(seq, update_id, Decimal(price), Decimal(qty), ts_us, Decimal(fee),
                       fee_asset))
        for _, order_id, symbol, side, seq, update_id, price, qty, ts_us, fee, fee_asset
        in rows[:limit]
    ], next_cursor  # fmt: skip


# -- the paper account -----------------------------------------------------------------

# An owner's balances (kind 0) and positions (kind 1) in one statement: one snapshot.
ACCOUNT_QUERY = (
    "SELECT 0, asset, free, locked, NULL, NULL, NULL FROM balances WHERE owner = {owner} "
    "UNION ALL "
    "SELECT 1, symbol, qty, avg_entry, avg_rounded, cash, fees FROM positions "
    "WHERE owner = {owner}"
)
POSITION_COLUMNS = "qty, avg_entry, avg_rounded, cash, fees"
BALANCE_UPSERT_TAIL = (
    "ON CONFLICT (owner, asset) DO UPDATE SET free = excluded.free, locked = excluded.locked"
)
POSITION_UPSERT_TAIL = (
    "ON CONFLICT (owner, symbol) DO UPDATE SET qty = excluded.qty, "
    "avg_entry = excluded.avg_entry, avg_rounded = excluded.avg_rounded, "
    "cash = excluded.cash, fees = excluded.fees"
)


def position_from_row(row: Sequence[Any]) -> PositionRow:
    """POSITION_COLUMNS as a PositionRow."""
    qty, avg_entry, avg_rounded, cash, fees = row
    return PositionRow(qty, avg_entry, bool(avg_rounded), cash, fees)


def account_from_rows(rows: Sequence[Sequence[Any]]) -> AccountState:
    """The rows of ACCOUNT_QUERY as the owner's account."""
    state = AccountState({}, {})
    for kind, name, *values in rows:
        if kind == 0:
            state.balances[name] = AssetBalance(Decimal(values[0]), Decimal(values[1]))
        else:
            state.positions[name] = position_from_row(values)
    state.balances = dict(sorted(state.balances.items()))
    state.positions = dict(sorted(state.positions.items()))
    return state


def balance_rows(
    rows: Mapping[tuple[str, str], AssetBalance],
) -> list[tuple[str, str, str, str]]:
    """(owner, asset, free, locked) rows to write, by owner and asset."""
    return [
        (owner, asset, fmt(row.free), fmt(row.locked))
        for (owner, asset), row in sorted(rows.items())
    ]


def position_rows(updates: Sequence[PositionUpdate]) -> list[tuple[Any, ...]]:
    """(owner, symbol, POSITION_COLUMNS...) rows to write; the last update of a position
    wins."""
    latest = {(update.owner, update.symbol): update.row for update in updates}
    return [
        (owner, symbol, row.qty, row.avg_entry, row.avg_rounded, row.cash, row.fees)
        for (owner, symbol), row in sorted(latest.items())
    ]
