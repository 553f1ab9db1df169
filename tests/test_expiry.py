"""ExpiryTimer: one heap and one loop timer for a symbol's order expiries."""

from __future__ import annotations

import asyncio

from app.execution.expiry import ExpiryTimer


class FakeClock:
    def __init__(self) -> None:
        self.us = 1_000_000_000

    def __call__(self) -> int:
        return self.us


async def test_orders_come_due_in_expiry_order_not_arrival_order() -> None:
    due: list[str] = []
    everyone = asyncio.Event()

    def on_due(order_id: str) -> None:
        due.append(order_id)
        if len(due) == 3:
            everyone.set()

    timer = ExpiryTimer(on_due)
    now = timer._clock()
    timer.add("late", now + 60_000)
    timer.add("soon", now + 20_000)  # sooner than everything waiting: the timer moves
    timer.add("middle", now + 40_000)
    await asyncio.wait_for(everyone.wait(), 2)
    assert due == ["soon", "middle", "late"]
    assert len(timer) == 0


async def test_a_discarded_order_never_comes_due_and_others_still_do() -> None:
    clock = FakeClock()
    due: list[str] = []
    timer = ExpiryTimer(due.append, clock)
    timer.add("filled", clock.us + 10)
    timer.add("open", clock.us + 20)
    timer.discard("filled")
    clock.us += 30
    timer._fire()  # what the loop timer does when it fires
    assert due == ["open"]
    timer.close()


async def test_a_timer_that_fires_early_rearms_instead_of_expiring_early() -> None:
    clock = FakeClock()
    due: list[str] = []
    timer = ExpiryTimer(due.append, clock)
    timer.add("a", clock.us + 1_000_000)
    clock.us += 999_000  # the loop's clock ran ahead of the wall clock
    timer._fire()
    assert due == [] and timer._armed_for == clock.us + 1_000
    clock.us += 1_000
    timer._fire()
    assert due == ["a"]
    assert timer._armed_for is None  # nothing left to wait for
    timer.close()


async def test_discarded_entries_are_compacted_away() -> None:
    timer = ExpiryTimer(lambda order_id: None)
    base = timer._clock() + 3_600_000_000
    for n in range(1_000):
        timer.add(f"o{n}", base + n)
    for n in range(990):
        timer.discard(f"o{n}")
    assert len(timer) == 10
    assert len(timer._heap) <= 2 * 10 + 64 + 1
    timer.close()


async def test_an_order_already_past_its_expiry_comes_due_at_once() -> None:
    fired = asyncio.Event()
    timer = ExpiryTimer(lambda order_id: fired.set())
    timer.add("late", timer._clock() - 5_000_000)
    await asyncio.wait_for(fired.wait(), 1)
    timer.close()
