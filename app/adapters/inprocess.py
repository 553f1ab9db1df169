"""The in-process bus and command queue: the embedded default, one process, no broker.

Bus subscribers get their own queue; what to do when a consumer falls behind is the
subscriber's choice (the /ws layer bounds and closes; tests read everything). Commands go
straight to execution's handler, in the order they were sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.adapters.subscription import QueueSubscription
from app.core.commands import OrderCommand
from app.core.events import OrderEvent
from app.ports import CommandHandler


class InProcessBus:
    def __init__(self) -> None:
        self._subscriptions: set[QueueSubscription] = set()

    async def publish(self, events: Sequence[OrderEvent]) -> None:
        for subscription in list(self._subscriptions):
            for event in events:
                subscription.offer(event)

    def subscribe(self, maxsize: int = 0) -> QueueSubscription:
        subscription = QueueSubscription(self.discard, maxsize)
        self._subscriptions.add(subscription)
        return subscription

    def discard(self, subscription: QueueSubscription) -> bool:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            return True
        return False


class InProcessCommandQueue:
    """Hands each command to the consumer at once; holds them until one is there."""

    lag_s = 0.0  # handed over as it is sent: nothing ever waits in between

    def __init__(self) -> None:
        self._handler: CommandHandler | None = None
        self._waiting: list[OrderCommand] = []

    async def send(self, command: OrderCommand) -> None:
        if self._handler is None:
            self._waiting.append(command)
        else:
            self._handler(command)

    def consume(self, handler: CommandHandler) -> None:
        self._handler = handler
        waiting, self._waiting = self._waiting, []
        for command in waiting:
            handler(command)
