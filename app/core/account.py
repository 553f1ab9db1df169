"""The paper account: balances with locks (app.core.balances), positions and P&L
(app.core.positions), and the GET /account view of them. Pure and exact: the stores persist
what these compute, in the same transaction as the order or fill that causes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from app.core.assets import SymbolAssets, guess_assets
from app.core.balances import (
    MARKET_BUY_RESERVE_FACTOR,
    AssetBalance,
    BalanceDelta,
    BalanceRefused,
    Balances,
    FeeFill,
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
    merged,
    parse_paper_balances,
)
from app.core.decimals import EXACT, ZERO
from app.core.positions import Position, PositionRow, Quote, show
from app.core.symbols import symbol_assets

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
    "OpeningBalances",
    "OwnerDelta",
    "Position",
    "PositionRow",
    "Quote",
    "SymbolAssets",
    "account_view",
    "add_owner_deltas",
    "assets_of",
    "change_deltas",
    "deltas_on_accept",
    "deltas_on_end",
    "deltas_on_fill",
    "deltas_on_fills",
    "guess_assets",
    "locked_by",
    "market_buy_reserve",
    "merge_owner_deltas",
    "open_order_locks",
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


def assets_of(symbol: str) -> SymbolAssets:
    """The symbol's assets as its fills' fees name them (`app.core.symbols`), so that a
    fee and the balance it is taken from always agree on the asset."""
    return symbol_assets(symbol)


@dataclass(frozen=True, slots=True)
class OwnerDelta:
    """Add `free` and `locked` to `owner`'s balance of `asset`."""

    owner: str
    asset: str
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class OpeningBalances:
    """What a store needs to accept an order's locks: PAPER_BALANCES (what an owner it has
    never seen starts with; None: empty, nothing enforced) and the order's deltas."""

    deltas: Sequence[BalanceDelta]
    opening: Mapping[str, Decimal] | None

    @property
    def enforced(self) -> bool:
        return self.opening is not None

    def assets(self) -> list[str]:
        """Every asset accepting may touch (a new owner's opening ones too), by name: the
        balance rows a store reads, and locks in this order."""
        return sorted({*(self.opening or {}), *(delta.asset for delta in self.deltas)})

    def rows_after(
        self,
        owner: str,
        rows: Mapping[tuple[str, str], AssetBalance],
        *,
        new_owner: bool,
    ) -> dict[tuple[str, str], AssetBalance]:
        """The owner's balance rows once the order is accepted (`rows`: as they are now,
        absent ones zero): a new owner is given the opening balances first, then the
        order's deltas apply; enforced, InsufficientBalance if they take more from free
        than is free. Only the rows that change are returned."""
        seeded: dict[tuple[str, str], AssetBalance] = {}
        if new_owner and self.opening:
            seed = [OwnerDelta(owner, asset, amount) for asset, amount in self.opening.items()]
            seeded = add_owner_deltas(rows, merge_owner_deltas(seed))
        taken = [OwnerDelta(owner, d.asset, d.free, d.locked) for d in self.deltas]
        after = add_owner_deltas({**rows, **seeded}, taken, enforced=self.enforced)
        return {**seeded, **after}


def change_deltas(
    order: LockingOrder, symbol: str, new_fills: Sequence[FeeFill], ended: bool
) -> list[BalanceDelta]:
    """What one committed change of an order does to its owner's balances: its new fills
    (each with its `fee`; `order` as it is after them) and, if the change ends it, the
    release of whatever it still locks. One delta per asset, by asset name."""
    assets = assets_of(symbol)
    deltas = deltas_on_fills(order, new_fills, assets) if new_fills else []
    if ended:
        deltas = deltas + deltas_on_end(order, assets)
    return merged(deltas)


def merge_owner_deltas(deltas: Iterable[OwnerDelta]) -> list[OwnerDelta]:
    """One delta per (owner, asset), zero ones left out, sorted by owner then asset: the
    order every store locks balance rows in, so two writers never wait on each other in a
    cycle."""
    totals: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for delta in deltas:
        key = (delta.owner, delta.asset)
        free, locked = totals.get(key, (ZERO, ZERO))
        totals[key] = (EXACT.add(free, delta.free), EXACT.add(locked, delta.locked))
    return [
        OwnerDelta(owner, asset, free, locked)
        for (owner, asset), (free, locked) in sorted(totals.items())
        if free or locked
    ]


def add_owner_deltas(
    rows: Mapping[tuple[str, str], AssetBalance],
    deltas: Iterable[OwnerDelta],
    *,
    enforced: bool = False,
) -> dict[tuple[str, str], AssetBalance]:
    """The rows after the deltas (rows absent count as zero): what a store writes back.
    `enforced`: InsufficientBalance if a delta takes more from free than is free."""
    after: dict[tuple[str, str], AssetBalance] = {}
    for delta in deltas:
        key = (delta.owner, delta.asset)
        row = after.get(key) or rows.get(key) or AssetBalance()
        free = EXACT.add(row.free, delta.free)
        if enforced and delta.free < ZERO and free < ZERO:
            raise InsufficientBalance(delta.asset, -delta.free, row.free)
        after[key] = AssetBalance(free, EXACT.add(row.locked, delta.locked))
    return after


def open_order_locks(orders: Iterable[tuple[str, str, LockingOrder]]) -> list[OwnerDelta]:
    """What open orders (owner, symbol, order) lock, as free → locked deltas: for orders
    accepted before balances were kept, so that their locks are held from then on."""
    deltas = []
    for owner, symbol, order in orders:
        lock = locked_by(order, assets_of(symbol))
        deltas.append(OwnerDelta(owner, lock.asset, -lock.amount, lock.amount))
    return merge_owner_deltas(deltas)
