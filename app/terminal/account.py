"""`python -m app account`: the owner's paper balances and positions (GET /account)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TextIO

from app.terminal.api import Api
from app.terminal.precision import Precisions, amount
from app.terminal.table import render_table


def balances_table(balances: list[dict[str, Any]]) -> str:
    rows = [
        [b["asset"], amount(b["free"]), amount(b["locked"]),
         amount(Decimal(b["free"]) + Decimal(b["locked"]))]
        for b in balances
    ]  # fmt: skip
    return render_table(("ASSET", "FREE", "LOCKED", "TOTAL"), rows, right=frozenset({1, 2, 3}))


async def show_account(api: Api, out: TextIO) -> int:
    account = await api.get("/account")
    balances, positions = account.get("balances") or [], account.get("positions") or []
    print(balances_table(balances) if balances else "no balances", file=out)
    if not positions:
        print("\nno positions", file=out)
        return 0
    precisions = Precisions(api)
    rows = []
    for position in positions:
        precision = await precisions.of(position["symbol"])
        rows.append([
            position["symbol"],
            precision.qty(position["qty"], [position["qty"]]),
            precision.price(position.get("avg_entry_price")),
            amount(position["realized_pnl"]),
            amount(position.get("unrealized_pnl")),
            amount(position["fees"]),
        ])  # fmt: skip
    headers = ("SYMBOL", "QTY", "AVG ENTRY", "REALIZED", "UNREALIZED", "FEES")
    print("\n" + render_table(headers, rows, right=frozenset({1, 2, 3, 4, 5})), file=out)
    return 0
