"""Events from the store's outbox onto the bus, when the store is shared by processes.

A change and its events commit in one transaction (the outbox); this relay publishes them
afterwards, in order, at least once, so a crash between the commit and the publish loses
nothing (consumers drop what they already delivered). Every process runs it; the store
lets one relay at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from app.core.events import OrderEvent
from app.ports import EventBus, EventPublisher, Outbox, Subscription

log = structlog.get_logger(__name__)

RELAY_BATCH = 500
IDLE_WAIT_S = 1.0


class PublishedByRelay:
    """The bus as services see it when the store has an outbox: their events are already
    committed there and the relay publishes them, so publishing again would only repeat."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    async def publish(self, events: Sequence[OrderEvent]) -> None:
        return None

    def subscribe(self, maxsize: int = 0) -> Subscription:
        return self._bus.subscribe(maxsize)


async def relay_forever(outbox: Outbox, publish: EventPublisher) -> None:
    failures = 0
    while True:
        try:
            relayed = await outbox.relay(publish, RELAY_BATCH)
            failures = 0
        except Exception as exc:  # the bus or the store is away: the events wait, safe
            failures += 1
            if failures == 1:
                log.error("relay.failed", error=repr(exc))
            await asyncio.sleep(min(5.0, 0.1 * 2**failures))
            continue
        if relayed < RELAY_BATCH:
            await outbox.wait(IDLE_WAIT_S)
