"""What a worker's committed batch does to its owners' accounts: balance deltas for its
fills and ends (app.core.balances), and the new positions its fills make.

Positions of the worker's symbol are held per owner, read from the store the first time
an owner's fill needs one, and folded one fill at a time in the order the fills happened
(Position.apply_fill is O(1)). A batch folds into copies; they replace the held positions
only once the batch is committed, so a batch that fails leaves nothing half-applied.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable, Sequence
from decimal import Decimal

from app.core.account import (
    OwnerDelta,
    Position,
    assets_of,
    deltas_on_end,
    deltas_on_fills,
)
from app.core.decimals import EXACT, ZERO
from app.core.domain import Side
from app.core.order import Fill
from app.core.positions import PositionRow
from app.ports import OrderChange, PositionUpdate

_NOTHING = (ZERO, ZERO)
MAX_HELD_POSITIONS = 100_000  # owners of one symbol held at once; past it, read again


def balance_deltas(changes: Iterable[OrderChange]) -> list[OwnerDelta]:
    """Every owner's balance deltas of these changes: each change's new fills, and the
    release of what the order still locks if the change ends it (exactly once: a store
    refuses any change to an order already final). By owner, then asset."""
    totals: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for change in changes:
        order = change.order
        ended = order.status.is_final
        if not change.new_fills and not ended:
            continue
        assets = assets_of(order.symbol)
        deltas = deltas_on_fills(order, change.new_fills, assets) if change.new_fills else []
        if ended:
            deltas += deltas_on_end(order, assets)
        for delta in deltas:  # summed straight into one total per (owner, asset)
            key = (order.owner, delta.asset)
            free, locked = totals.get(key, _NOTHING)
            totals[key] = (EXACT.add(free, delta.free), EXACT.add(locked, delta.locked))
    return [
        OwnerDelta(owner, asset, free, locked)
        for (owner, asset), (free, locked) in sorted(totals.items())
        if free or locked
    ]


LoadPosition = Callable[[str, str], Awaitable[PositionRow | None]]


class PositionBook:
    """One symbol's positions per owner (see the module)."""

    def __init__(self, symbol: str, load: LoadPosition) -> None:
        self.symbol = symbol
        self._load = load
        self._held: dict[str, Position] = {}

    async def fold(
        self, fills: Sequence[tuple[str, Side, Fill]]
    ) -> tuple[list[PositionUpdate], dict[str, Position]]:
        """The positions after these (owner, side, fill)s, in the order they happened:
        the rows to commit and the positions to `keep` once they are."""
        after: dict[str, Position] = {}
        for owner, side, fill in fills:
            position = after.get(owner)
            if position is None:
                position = after[owner] = copy.copy(await self._held_or_stored(owner))
            position.apply_fill(side, fill.price, fill.qty, fill.fee)
        updates = [
            PositionUpdate(owner, self.symbol, position.to_row())
            for owner, position in after.items()
        ]
        return updates, after

    def keep(self, positions: dict[str, Position]) -> None:
        """The batch that made these is committed: they are the owners' positions now."""
        if len(self._held) + len(positions) > MAX_HELD_POSITIONS:
            self._held.clear()
        self._held.update(positions)

    def forget(self) -> None:
        """The worker rebuilds from the store: so do the positions, when next needed."""
        self._held.clear()

    async def _held_or_stored(self, owner: str) -> Position:
        held = self._held.get(owner)
        if held is not None:
            return held
        row = await self._load(owner, self.symbol)
        return Position(self.symbol) if row is None else Position.from_row(self.symbol, row)
