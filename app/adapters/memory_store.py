"""An order store in process memory: the store port's reference adapter.

Nothing survives the process. It is for tests and benchmarks that want the service without
a disk, and as the plainest statement of what the port promises: the same contract suite
(tests/contracts/test_store_port.py) runs against it and against every real database.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.core.account import AssetBalance, OpeningBalances, OwnerDelta, add_owner_deltas
from app.core.domain import MarketState, OrderStatus
from app.core.events import OrderEvent
from app.core.order import NO_FILLS, Order
from app.core.positions import PositionRow
from app.ports import (
    AccountState,
    DuplicateClientOrderId,
    Fence,
    FillPage,
    OrderChange,
    OrderPage,
    OwnedFill,
    PositionUpdate,
    StoreConflict,
    StoreError,
)


def _copy(order: Order, *, with_fills: bool) -> Order:
    copied = copy.copy(order)
    copied.fills = list(order.fills) if with_fills else NO_FILLS
    return copied


@dataclass(slots=True)
class _Row:
    seq: int
    order: Order  # our own copy, with every stored fill
    fill_seqs: set[int] = field(default_factory=set)


class MemoryStore:
    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._by_client_id: dict[tuple[str, str], str] = {}
        self._market: dict[str, MarketState] = {}
        self._owners: set[str] = set()  # seen: given their opening balances
        self._balances: dict[tuple[str, str], AssetBalance] = {}  # (owner, asset)
        self._positions: dict[tuple[str, str], PositionRow] = {}  # (owner, symbol)
        self._next_seq = 1
        self._fills: list[tuple[str, OwnedFill]] = []  # (owner, fill), in the order stored
        self._closed = False
        self.commits = 0

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    async def insert_order(
        self,
        order: Order,
        events: Sequence[OrderEvent] = (),
        balances: OpeningBalances | None = None,
    ) -> None:
        # In process, events go out on the bus after the commit: no outbox here.
        self._check_open()
        await asyncio.sleep(0)  # a write is never synchronous with its caller elsewhere either
        if order.order_id in self._rows:
            raise StoreConflict(f"order {order.order_id} is already stored")
        key = None if order.client_order_id is None else (order.owner, order.client_order_id)
        if key is not None and key in self._by_client_id:
            raise DuplicateClientOrderId(order.client_order_id)
        if balances is not None:  # may refuse (InsufficientBalance): before any change
            owner = order.owner
            rows = {
                (owner, asset): self._balances[owner, asset]
                for asset in balances.assets()
                if (owner, asset) in self._balances
            }
            self._balances.update(
                balances.rows_after(owner, rows, new_owner=owner not in self._owners)
            )
            self._owners.add(owner)
        if key is not None:
            self._by_client_id[key] = order.order_id
        self._rows[order.order_id] = _Row(self._next_seq, _copy(order, with_fills=True))
        self._next_seq += 1
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
        # One process owns every symbol (no fence to check), and its bus publishes after
        # the commit (no outbox): `events` and `fence` are for stores shared by processes.
        self._check_open()
        await asyncio.sleep(0)
        # Check everything first: all or nothing.
        for change in changes:
            row = self._rows.get(change.order.order_id)
            if row is None or row.order.status.is_final:
                raise StoreConflict("an order in this change is unknown or already final")
            if any(fill.seq in row.fill_seqs for fill in change.new_fills):
                raise StoreConflict("a fill is already stored")
        for change in changes:
            row = self._rows[change.order.order_id]
            fills = [*row.order.fills, *change.new_fills]
            row.order = _copy(change.order, with_fills=False)
            row.order.fills = fills
            row.fill_seqs.update(fill.seq for fill in change.new_fills)
            order = change.order
            self._fills.extend(
                (order.owner, OwnedFill(order.order_id, order.symbol, order.side, fill))
                for fill in change.new_fills
            )
        if market is not None:
            self._market[market.symbol] = market
        self._balances.update(add_owner_deltas(self._balances, balances))
        for update in positions:
            self._positions[update.owner, update.symbol] = update.row
        self.commits += 1

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        self._check_open()
        row = self._rows.get(order_id)
        return None if row is None else _copy(row.order, with_fills=with_fills)

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None:
        order_id = self._by_client_id.get((owner, client_order_id))
        return None if order_id is None else await self.get(order_id)

    async def list_orders(
        self,
        owner: str,
        *,
        status: OrderStatus | None,
        symbol: str | None,
        limit: int,
        cursor: int | None,
    ) -> OrderPage:
        self._check_open()
        matching = [
            row
            for row in reversed(self._rows.values())  # insertion order is seq order
            if row.order.owner == owner
            and (status is None or row.order.status is status)
            and (symbol is None or row.order.symbol == symbol)
            and (cursor is None or row.seq < cursor)
        ]
        page = matching[:limit]
        next_cursor = str(page[-1].seq) if len(matching) > limit else None
        return OrderPage([_copy(row.order, with_fills=False) for row in page], next_cursor)

    async def list_fills(
        self, owner: str, *, symbol: str | None, limit: int, cursor: int | None
    ) -> FillPage:
        """A fill's cursor is its place in `_fills` plus one (as a database id from 1)."""
        self._check_open()
        end = len(self._fills) if cursor is None else min(cursor - 1, len(self._fills))
        page: list[tuple[int, OwnedFill]] = []
        for index in range(end - 1, -1, -1):
            who, fill = self._fills[index]
            if who == owner and (symbol is None or fill.symbol == symbol):
                if len(page) == limit:
                    return FillPage([fill for _, fill in page], str(page[-1][0] + 1))
                page.append((index, fill))
        return FillPage([fill for _, fill in page], None)

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        self._check_open()
        return [
            _copy(row.order, with_fills=False)
            for row in self._rows.values()
            if not row.order.status.is_final and (symbol is None or row.order.symbol == symbol)
        ]

    async def open_counts(self) -> dict[str, int]:
        self._check_open()
        return dict(
            Counter(row.order.owner for row in self._rows.values() if not row.order.status.is_final)
        )

    async def market_state(self, symbol: str) -> MarketState | None:
        self._check_open()
        return self._market.get(symbol)

    async def account(self, owner: str) -> AccountState:
        self._check_open()
        return AccountState(
            {asset: AssetBalance(row.free, row.locked)
             for (who, asset), row in sorted(self._balances.items()) if who == owner},
            {symbol: row for (who, symbol), row in sorted(self._positions.items()) if who == owner},
        )  # fmt: skip

    async def position(self, owner: str, symbol: str) -> PositionRow | None:
        self._check_open()
        return self._positions.get((owner, symbol))

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True
