"""`python -m app orders`: the owner's recent orders as a table, newest first.

One page (`--limit`, default 20) of `GET /orders`, then the `--cursor` that shows the next
one; `--all` follows the cursors to the end. Ids begin with a timestamp, so orders placed
close together share most of their id: the table shows the shortest tail (at least
`MIN_ID_TAIL` characters) that tells the listed orders apart; `--full-ids` shows them whole.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from app.terminal.api import Api, ApiError
from app.terminal.precision import Precision, Precisions, amount
from app.terminal.table import render_table

MIN_ID_TAIL = 6
FULL_ID_LENGTH = 32  # app/ids.py: 32 hex characters
RECENT = 500  # the orders an id tail is looked for among (one page of GET /orders)
HEX = frozenset("0123456789abcdef")
OPEN = {"open", "partially_filled"}
HEADERS = (
    "ID", "SYMBOL", "SIDE", "TYPE", "SIZE", "PRICE", "FILLED", "AVG", "FEES",
    "STATUS", "EXPIRES IN", "REASON",
)  # fmt: skip
NUMBERS = frozenset({4, 5, 6, 7, 8, 10})


def id_tail_length(order_ids: Sequence[str]) -> int:
    """The shortest tail length (>= MIN_ID_TAIL) under which the ids are all different."""
    longest = max((len(order_id) for order_id in order_ids), default=MIN_ID_TAIL)
    for length in range(MIN_ID_TAIL, longest + 1):
        if len({order_id[-length:] for order_id in order_ids}) == len(order_ids):
            return length
    return longest


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def duration(seconds: float) -> str:
    """A short duration: 9s, 4m05s, 2h03m, 3d04h."""
    whole = max(int(seconds), 0)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def filled_percent(order: dict[str, Any]) -> str:
    size = Decimal(order["order_size"])
    percent = Decimal(order["filled_qty"]) / size * 100 if size else Decimal(0)
    return f"{percent:.2f}%"


def order_row(order: dict[str, Any], precision: Precision, *, tail: int, now: float) -> list[str]:
    price, size = order.get("price"), order["order_size"]
    kind = "market" if order.get("type") == "market" else f"limit {order.get('time_in_force', '')}"
    fees = order.get("fees") or "0"
    fee_text = "-" if Decimal(fees) == 0 else f"{amount(fees)} {order.get('fee_asset') or ''}"
    expires = "-"
    if order["status"] in OPEN:
        expires = duration(timestamp(order["expires_at"]) - now)
    return [
        order["order_id"][-tail:],
        order["symbol"],
        order["side"],
        kind.strip(),
        precision.qty(size, [size]),
        "market" if price is None else precision.price(price, [price]),
        filled_percent(order),
        precision.price(order.get("avg_price"), [price]),
        fee_text.strip(),
        order["status"],
        expires,
        order.get("reason") or "",
    ]


def orders_table(
    orders: Sequence[dict[str, Any]],
    precisions: dict[str, Precision],
    *,
    full_ids: bool = False,
    now: float | None = None,
) -> str:
    ids = [order["order_id"] for order in orders]
    tail = max(map(len, ids), default=0) if full_ids else id_tail_length(ids)
    moment = time.time() if now is None else now
    rows = [
        order_row(order, precisions.get(order["symbol"], Precision()), tail=tail, now=moment)
        for order in orders
    ]
    return render_table(HEADERS, rows, right=NUMBERS)


async def list_orders(
    api: Api,
    out: TextIO,
    *,
    status: str | None = None,
    symbol: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    follow_all: bool = False,
    full_ids: bool = False,
) -> int:
    """Print the table (and how to see the next page); ApiError when the service refuses."""
    params = {"limit": str(limit)}
    if status:
        params["status"] = status
    if symbol:
        params["symbol"] = symbol.upper()
    orders: list[dict[str, Any]] = []
    while True:
        if cursor:
            params["cursor"] = cursor
        page = await api.get("/orders", params)
        orders += page["orders"]
        cursor = page.get("next_cursor")
        if not follow_all or not cursor:
            break
    if not orders:
        print("no orders", file=out)
        return 0
    precision_of = Precisions(api)
    precisions = {s: await precision_of.of(s) for s in sorted({o["symbol"] for o in orders})}
    print(orders_table(orders, precisions, full_ids=full_ids), file=out)
    if cursor:
        print(f"more: --cursor {cursor}  (or --all)", file=out)
    return 0


async def resolve_order_id(api: Api, text: str) -> str:
    """The whole id of the one recent order whose id ends with `text` (a tail the table
    showed); `text` itself when it is not a shorter run of hex digits."""
    tail = text.lower()
    if len(tail) >= FULL_ID_LENGTH or not tail or not set(tail) <= HEX:
        return text
    page = await api.get("/orders", {"limit": str(RECENT)})
    matches = [o["order_id"] for o in page["orders"] if o["order_id"].endswith(tail)]
    if not matches:
        raise ApiError(f"error: order not found: none of the last {RECENT} ends with {text}")
    if len(matches) > 1:
        raise ApiError(f"error: {len(matches)} recent orders end with {text}: give more of it")
    return str(matches[0])
