"""One consumer's queue of bus events, for every bus adapter.

The subscriber reads at its own pace; past `maxsize` waiting events the subscription ends
(`overflowed`) rather than dropping one silently: what to do then is the subscriber's
choice (the /ws layer closes the socket and the client resubscribes for a snapshot).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from app.core.events import OrderEvent


class QueueSubscription:
    def __init__(self, discard: Callable[[QueueSubscription], bool], maxsize: int) -> None:
        self._discard = discard  # the bus forgets it: True the first time
        self.queue: asyncio.Queue[OrderEvent | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: OrderEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True  # never dropped silently: the subscription ends
            self.close()

    async def __aiter__(self) -> AsyncIterator[OrderEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event

    def close(self) -> None:
        if self._discard(self):
            while True:  # make room for the end marker
                try:
                    self.queue.put_nowait(None)
                    return
                except asyncio.QueueFull:
                    self.queue.get_nowait()
