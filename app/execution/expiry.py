"""When each open order of one symbol expires: a heap and a single loop timer.

A timer per order would cost a timer handle per resting order (with uvloop, a libuv timer
too) and a cancel per fill; the heap costs one small tuple, and the one timer is moved
only when an order expires sooner than everything already waiting.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

from app.clock import now_us


class ExpiryTimer:
    """Calls `on_due(order_id)` once each added order's time has come, unless discarded."""

    def __init__(self, on_due: Callable[[str], None], clock: Callable[[], int] = now_us) -> None:
        self._on_due = on_due
        self._clock = clock
        self._due: dict[str, int] = {}  # order_id -> expires_at_us, only the live ones
        self._heap: list[tuple[int, str]] = []  # may hold discarded entries until popped
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def __len__(self) -> int:
        return len(self._due)

    def add(self, order_id: str, expires_at_us: int) -> None:
        self._due[order_id] = expires_at_us
        heapq.heappush(self._heap, (expires_at_us, order_id))
        if self._armed_for is None or expires_at_us < self._armed_for:
            self._arm(expires_at_us)

    def discard(self, order_id: str) -> None:
        if self._due.pop(order_id, None) is not None and len(self._heap) > 2 * len(self._due) + 64:
            # Mostly discarded entries (orders that filled or were cancelled): rebuild.
            self._heap = [(due, order_id) for order_id, due in self._due.items()]
            heapq.heapify(self._heap)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed_for = None

    def _arm(self, due_us: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (due_us - self._clock()) / 1e6)
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)
        self._armed_for = due_us

    def _fire(self) -> None:
        self._timer = self._armed_for = None
        now = self._clock()
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            expires_at_us, order_id = heapq.heappop(heap)
            if due.get(order_id) == expires_at_us:
                del due[order_id]
                self._on_due(order_id)
        while heap and due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # discarded: no need to wake up for it
        if heap:
            self._arm(heap[0][0])
