"""What happened to an order, as the bus carries it: a kind and a snapshot, never JSON.

Formatting is the edge's job (`app.schemas`): the hub renders an event once, and only when
some client wants it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from app.core.domain import OrderStatus
from app.core.order import Fill, Order


class EventKind(enum.StrEnum):
    ACCEPTED = "accepted"
    FILL = "fill"
    FILLED = "filled"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        """The event that ends an order: the one whose status is final."""
        return self in _FINAL

    @classmethod
    def ending(cls, status: OrderStatus) -> EventKind:
        """The event an order ending in `status` publishes."""
        if not status.is_final:
            raise ValueError(f"{status} does not end an order")
        return cls(status.value)


# One definition of "final": an event is final when the status it is named after is.
_FINAL = frozenset(
    kind
    for kind in EventKind
    if kind.value in OrderStatus.__members__.values() and OrderStatus(kind.value).is_final
)


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """`kind` happened to the order; `order` is its state right then (without fills)."""

    kind: EventKind
    order: Order  # a snapshot (Order.snapshot()): nobody changes it after publishing
    fill: Fill | None = None  # on FILL events
    # The trace context of what produced it (W3C `traceparent`...), when tracing is on:
    # not part of what happened, so equality ignores it.
    trace: dict[str, str] | None = field(default=None, compare=False)

    @property
    def owner(self) -> str:
        return self.order.owner

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def symbol(self) -> str:
        return self.order.symbol

    @property
    def fill_seq(self) -> int:
        """The order's fill count once this event happened (orders fills exactly once)."""
        return self.fill.seq if self.fill is not None else 0


def order_event(
    kind: EventKind,
    order: Order,
    fill: Fill | None = None,
    trace: dict[str, str] | None = None,
) -> OrderEvent:
    """The event for `order` as it is now (a snapshot is taken at once, not later)."""
    return OrderEvent(kind, order.snapshot(), fill, trace)
