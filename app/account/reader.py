"""An owner's account as GET /account and the /ws account channel show it."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.account.quotes import LatestQuotes
from app.core.account import Balances, Position, account_view
from app.ports import OrderStore


class AccountReader:
    def __init__(
        self, store: OrderStore, quotes: LatestQuotes, *, opening: Mapping[str, Decimal] | None
    ) -> None:
        self._store = store
        self._quotes = quotes
        self._opening = opening  # PAPER_BALANCES (None: empty, nothing enforced)

    async def view(self, owner: str) -> dict[str, Any]:
        """`{"balances": [...], "positions": [...]}` as of one commit, positions marked to
        the latest quotes this process knows (unrealized P&L null without one). An owner
        who has not traded yet has what PAPER_BALANCES will give them."""
        state = await self._store.account(owner)
        if not state.balances and not state.positions:
            balances = Balances.opening(self._opening)
        else:
            balances = Balances(state.balances, enforced=self._opening is not None)
        positions = [Position.from_row(symbol, row) for symbol, row in state.positions.items()]
        return account_view(balances, positions, self._quotes.quotes(state.positions))
