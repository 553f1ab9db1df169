"""What intake asks of execution, through the command queue (partitioned by symbol)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.order import Order


@dataclass(frozen=True, slots=True)
class AddOrder:
    """Start filling this order (already durable in the store)."""

    order: Order
    # The order's trace context (W3C `traceparent`...), when tracing is on: not part of
    # what the command means, so equality ignores it.
    trace: dict[str, str] | None = field(default=None, compare=False)

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
