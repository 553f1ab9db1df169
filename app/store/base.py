"""What the order service needs from persistent storage.

SQLite (`app.store.sqlite`) is the embedded default; a PostgreSQL store would implement
the same protocol without the service, the engine or the HTTP layer changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.domain import OrderStatus
from app.order import Fill, Order


class StoreError(Exception):
    """The store could not complete a write; nothing of it was kept."""


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

    async def apply(self, changes: Sequence[OrderChange]) -> None:
        """Durably store fills and order updates, all or nothing."""

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None: ...

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None: ...

    async def list(
        self,
        owner: str,
        *,
        status: OrderStatus | None,
        symbol: str | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage: ...

    async def open_orders(self) -> list[Order]:
        """Orders still open or partially filled, oldest first."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
