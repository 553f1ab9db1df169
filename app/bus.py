"""Order events, published only after the change they describe is committed.

The in-process bus is the embedded default; a Redis Streams bus would implement the same
protocol. Subscribers get their own queue; what to do when a consumer falls behind is the
subscriber's choice (the /ws layer bounds and closes; tests read everything).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from app.order import Order
from app.schemas import order_json


@dataclass(frozen=True, slots=True)
class OrderEvent:
    event: str  # accepted | fill | filled | expired | cancelled | rejected
    owner: str
    order_id: str
    symbol: str
    order: dict[str, Any]  # the order object of CONTRACT.md, without fills
    fill: dict[str, Any] | None = None

    @property
    def fill_seq(self) -> int:
        """The order's fill count once this event happened (orders fills exactly once)."""
        return int(self.fill["seq"]) if self.fill else 0


def order_event(event: str, order: Order, fill: dict[str, Any] | None = None) -> OrderEvent:
    """The event for `order` as it is now (its view is taken at once, not later)."""
    view = order_json(order, with_fills=False)
    return OrderEvent(event, order.owner, order.order_id, order.symbol, view, fill)


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[OrderEvent]: ...

    def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, events: list[OrderEvent]) -> None: ...

    def subscribe(self, maxsize: int = 0) -> Subscription: ...


class _QueueSubscription:
    def __init__(self, bus: InProcessBus, maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[OrderEvent | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: OrderEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Never dropped silently: the subscription ends and says why.
            self.overflowed = True
            self.close()

    async def __aiter__(self) -> AsyncIterator[OrderEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event

    def close(self) -> None:
        if self._bus.discard(self):
            while True:  # make room for the end marker
                try:
                    self.queue.put_nowait(None)
                    return
                except asyncio.QueueFull:
                    self.queue.get_nowait()


class InProcessBus:
    def __init__(self) -> None:
        self._subscriptions: set[_QueueSubscription] = set()

    async def publish(self, events: list[OrderEvent]) -> None:
        for subscription in list(self._subscriptions):
            for event in events:
                subscription.offer(event)

    def subscribe(self, maxsize: int = 0) -> _QueueSubscription:
        subscription = _QueueSubscription(self, maxsize)
        self._subscriptions.add(subscription)
        return subscription

    def discard(self, subscription: _QueueSubscription) -> bool:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            return True
        return False
