"""When each open order of one symbol expires: runs in expiry order and a single loop timer.

A timer per order would cost a timer handle per resting order (with uvloop, a libuv timer
too) and a cancel per fill. Orders mostly arrive in expiry order already: those with the
same timeout expire in the order they were accepted. So each order's id is appended to a
run (a deque) whose expiries never decrease, costing one deque slot (8 bytes) where a heap
entry would cost a tuple (~70 bytes); a few runs cover a few distinct timeouts, and what
fits no run (past `MAX_RUNS`) goes to a heap. The one timer is moved only when an order
expires sooner than everything already waiting.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from app.clock import now_us

MAX_RUNS = 16


class Expiring(Protocol):
    @property
    def expires_at_us(self) -> int: ...


class _Run:
    """Order ids whose expiries never decrease from head to tail."""

    __slots__ = ("ids", "last_due")

    def __init__(self, order_id: str, due_us: int) -> None:
        self.ids: deque[str] = deque((order_id,))
        self.last_due = due_us


class ExpiryTimer:
    """Calls `on_due(order_id)` once each added order's time has come, unless discarded.

    With `held` (the caller's own map of the orders it holds, which it leaves before it
    discards one), an order is live while it is in there and its expiry is read from it:
    no map of the timer's own, one dict entry less per resting order. Without, the timer
    keeps its own."""

    def __init__(
        self,
        on_due: Callable[[str], None],
        clock: Callable[[], int] = now_us,
        *,
        held: Mapping[str, Expiring] | None = None,
    ) -> None:
        self._on_due = on_due
        self._clock = clock
        self._held = held
        # order_id -> expires_at_us, only the live ones (unless `held` tells)
        self._due: dict[str, int] = {}
        # Both may hold discarded ids until they reach the front or are compacted away.
        self._runs: list[_Run] = []
        self._heap: list[tuple[int, str]] = []  # what fits no run
        self._entries = 0  # ids in the runs and the heap, discarded ones included
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: int | None = None

    def __len__(self) -> int:
        return len(self._due) if self._held is None else len(self._held)

    def _due_of(self, order_id: str) -> int | None:
        if self._held is None:
            return self._due.get(order_id)
        order = self._held.get(order_id)
        return None if order is None else order.expires_at_us

    @property
    def entries(self) -> int:
        """Ids held in expiry order, discarded ones not yet dropped included."""
        return self._entries

    def add(self, order_id: str, expires_at_us: int) -> None:
        if self._held is None:
            self._due[order_id] = expires_at_us
        self._entries += 1
        self._place(order_id, expires_at_us)
        if self._armed_for is None or expires_at_us < self._armed_for:
            self._arm(expires_at_us)

    def _place(self, order_id: str, due_us: int) -> None:
        # The run that ends latest at or before `due_us` (fewest runs over time).
        best: _Run | None = None
        for run in self._runs:
            if run.last_due <= due_us and (best is None or run.last_due > best.last_due):
                best = run
        if best is not None:
            best.ids.append(order_id)
            best.last_due = due_us
        elif len(self._runs) < MAX_RUNS:
            self._runs.append(_Run(order_id, due_us))
        else:
            heapq.heappush(self._heap, (due_us, order_id))

    def discard(self, order_id: str) -> None:
        if self._held is None and self._due.pop(order_id, None) is None:
            return
        if self._entries > 2 * len(self) + 64:
            self._compact()

    def _compact(self) -> None:
        """Mostly discarded ids (orders that filled or were cancelled): start again from
        the live ones, sorted, as a single run."""
        if self._held is None:
            live = sorted(self._due.items(), key=lambda item: item[1])
        else:
            held = ((order_id, order.expires_at_us) for order_id, order in self._held.items())
            live = sorted(held, key=lambda item: item[1])
        self._heap = []
        self._runs = []
        if live:
            run = _Run(*live[0])
            run.ids.extend(order_id for order_id, _ in live[1:])
            run.last_due = live[-1][1]
            self._runs.append(run)
        self._entries = len(live)

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

    def _next(self) -> tuple[int, _Run | None] | None:
        """The soonest live expiry and where it is (None: the heap), dropping discarded
        ids found in front on the way; None if nothing is waiting."""
        due_of = self._due_of
        soonest: tuple[int, _Run | None] | None = None
        for run in self._runs:
            ids = run.ids
            while ids:
                due_us = due_of(ids[0])
                if due_us is not None:
                    if soonest is None or due_us < soonest[0]:
                        soonest = (due_us, run)
                    break
                ids.popleft()
                self._entries -= 1
        heap = self._heap
        while heap:
            due_us, order_id = heap[0]
            if due_of(order_id) == due_us:
                if soonest is None or due_us < soonest[0]:
                    soonest = (due_us, None)
                break
            heapq.heappop(heap)
            self._entries -= 1
        if self._runs and not all(run.ids for run in self._runs):
            self._runs = [run for run in self._runs if run.ids]
        return soonest

    def _fire(self) -> None:
        self._timer = self._armed_for = None
        now = self._clock()
        while (soonest := self._next()) is not None:
            due_us, run = soonest
            if due_us > now:
                self._arm(due_us)
                return
            order_id = run.ids.popleft() if run is not None else heapq.heappop(self._heap)[1]
            self._entries -= 1
            if self._held is None:
                del self._due[order_id]
            self._on_due(order_id)
