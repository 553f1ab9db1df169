"""What intake asks of execution, through the command queue (partitioned by symbol)."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.order import Order


@dataclass(frozen=True, slots=True)
class AddOrder:
    """Start filling this order (already durable in the store)."""

    order: Order

    @property
    def symbol(self) -> str:
        return self.order.symbol


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel the order if it is still open. The answer is in the store and on the bus
    (a `cancelled` event), whoever sent the command and wherever it runs."""

    order_id: str
    symbol: str


OrderCommand = AddOrder | CancelOrder
