"""What the order service needs from persistent storage.

SQLite (`app.store.sqlite`) is the embedded default; a PostgreSQL store would implement
the same protocol without the service, the engine or the HTTP layer changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.domain import MarketState, OrderStatus
from app.order import Fill, Order


class StoreError(Exception):
    """The store could not complete a write; nothing of it was kept."""


class StoreUnavailable(StoreError):
    """The database could not take the write now (busy, locked, I/O): it may on a retry."""


class StoreConflict(StoreError):
    """The write contradicts what is stored (a final order, a fill already stored).

    Retrying cannot help: the writer's view is wrong and must be rebuilt from the store.
    """


class DuplicateClientOrderId(Exception):
    """Another order of this owner already carries this client_order_id."""


@dataclass(slots=True)
class OrderChange:
    """An order's new totals and status, with the fills that produced them."""

    order: Order
    new_fills: Sequence[Fill] = ()


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


class OrderStore(Protocol):
    async def insert_order(self, order: Order) -> None:
        """Durably store a new order; raises DuplicateClientOrderId or StoreError."""

    async def apply(
        self, changes: Sequence[OrderChange], market: MarketState | None = None
    ) -> None:
        """Durably store fills, order updates and the symbol's market state, all or nothing."""

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        """The order and its fills as of one committed state (never torn by a commit)."""

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None: ...

    async def list_orders(
        self,
        owner: str,
        *,
        status: OrderStatus | None,
        symbol: str | None,
        limit: int,
        cursor: int | None,
    ) -> OrderPage: ...

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders still open or partially filled (of one symbol, or all), oldest first."""

    async def market_state(self, symbol: str) -> MarketState | None:
        """What `apply` last stored for the symbol, if anything."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
