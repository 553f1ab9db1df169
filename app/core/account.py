"""The paper account: balances with locks (app.core.balances), positions and P&L
(app.core.positions), and the GET /account view of them. Pure and exact: the stores persist
what these compute, in the same transaction as the order or fill that causes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.core.assets import SymbolAssets, guess_assets
from app.core.balances import (
    MARKET_BUY_RESERVE_FACTOR,
    AssetBalance,
    BalanceDelta,
    BalanceRefused,
    Balances,
    InsufficientBalance,
    Lock,
    LockingOrder,
    NoAskForMarketBuy,
    deltas_on_accept,
    deltas_on_end,
    deltas_on_fill,
    deltas_on_fills,
    locked_by,
    market_buy_reserve,
    parse_paper_balances,
)
from app.core.positions import Position, Quote, show

__all__ = [
    "MARKET_BUY_RESERVE_FACTOR",
    "AccountView",
    "AssetBalance",
    "BalanceDelta",
    "BalanceRefused",
    "Balances",
    "InsufficientBalance",
    "Lock",
    "LockingOrder",
    "NoAskForMarketBuy",
    "Position",
    "Quote",
    "SymbolAssets",
    "account_view",
    "deltas_on_accept",
    "deltas_on_end",
    "deltas_on_fill",
    "deltas_on_fills",
    "guess_assets",
    "locked_by",
    "market_buy_reserve",
    "parse_paper_balances",
]

AccountView = dict[str, list[dict[str, str | None]]]


def account_view(
    balances: Balances, positions: Iterable[Position], quotes: Mapping[str, Quote]
) -> AccountView:
    """GET /account: `{"balances": [{"asset", "free", "locked"}], "positions": [{"symbol",
    "qty", "avg_entry_price", "realized_pnl", "unrealized_pnl", "fees"}]}`, decimals as
    strings, balances by asset and positions by symbol; `quotes` by symbol."""
    return {
        "balances": [
            {"asset": asset, "free": show(row.free), "locked": show(row.locked)}
            for asset, row in balances.rows().items()
        ],
        "positions": [
            position.view(quotes.get(position.symbol))
            for position in sorted(positions, key=lambda position: position.symbol)
        ],
    }
