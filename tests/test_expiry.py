"""ExpiryTimer: runs in expiry order (a heap for the rest) and one loop timer per symbol."""

from __future__ import annotations

import asyncio

from app.execution.expiry import MAX_RUNS, ExpiryTimer


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
    assert timer.entries <= 2 * 10 + 64 + 1
    timer.close()


async def test_an_order_already_past_its_expiry_comes_due_at_once() -> None:
    fired = asyncio.Event()
    timer = ExpiryTimer(lambda order_id: fired.set())
    timer.add("late", timer._clock() - 5_000_000)
    await asyncio.wait_for(fired.wait(), 1)
    timer.close()


async def test_orders_of_many_timeouts_interleaved_come_due_in_expiry_order() -> None:
    clock = FakeClock()
    due: list[str] = []
    timer = ExpiryTimer(due.append, clock)
    expiries: dict[str, int] = {}
    # Accepted one after another with timeouts of their own: more distinct timeouts than
    # runs, so some go to the heap; and a clock that steps back once.
    for n in range(300):
        clock.us += -500 if n == 150 else 3
        order_id = f"o{n}"
        expiries[order_id] = clock.us + 1_000 * ((n * 7919) % (MAX_RUNS * 6))
        timer.add(order_id, expiries[order_id])
    for n in range(0, 300, 5):
        timer.discard(f"o{n}")
        del expiries[f"o{n}"]
    assert timer._heap, "the test must reach past the runs"
    clock.us += 10_000_000
    timer._fire()
    assert [expiries[order_id] for order_id in due] == sorted(expiries.values())
    assert set(due) == set(expiries) and len(timer) == 0 and timer.entries == 0
    timer.close()


async def test_orders_of_one_timeout_cost_one_run_and_no_heap_entry() -> None:
    clock = FakeClock()
    timer = ExpiryTimer(lambda order_id: None, clock)
    for n in range(1_000):
        clock.us += 1
        timer.add(f"o{n}", clock.us + 30_000_000)
    assert len(timer._runs) == 1 and not timer._heap
    timer.close()


async def test_only_what_is_due_fires_and_the_timer_waits_for_the_rest() -> None:
    clock = FakeClock()
    due: list[str] = []
    timer = ExpiryTimer(due.append, clock)
    start = clock.us
    timer.add("b", start + 200)
    timer.add("a", start + 100)  # sooner: a run of its own
    timer.add("c", start + 300)
    clock.us = start + 250
    timer._fire()
    assert due == ["a", "b"] and timer._armed_for == start + 300 and len(timer) == 1
    timer.close()


class Held:
    def __init__(self, expires_at_us: int) -> None:
        self.expires_at_us = expires_at_us


async def test_with_the_callers_map_an_order_is_live_while_held_and_due_as_it_says() -> None:
    clock = FakeClock()
    due: list[str] = []
    held: dict[str, Held] = {}
    timer = ExpiryTimer(due.append, clock, held=held)
    for n, offset in enumerate((30, 10, 20, 40)):
        held[f"o{n}"] = Held(clock.us + offset)
        timer.add(f"o{n}", held[f"o{n}"].expires_at_us)
    assert not timer._due and len(timer) == 4
    del held["o2"]  # ended: the caller lets go first, then discards
    timer.discard("o2")
    clock.us += 35
    timer._fire()
    assert due == ["o1", "o0"] and timer._armed_for == clock.us + 5
    timer.close()


async def test_with_the_callers_map_discarded_entries_are_compacted_away() -> None:
    held: dict[str, Held] = {}
    timer = ExpiryTimer(lambda order_id: None, held=held)
    base = timer._clock() + 3_600_000_000
    for n in range(1_000):
        held[f"o{n}"] = Held(base + (n * 7919) % 1_000)
        timer.add(f"o{n}", held[f"o{n}"].expires_at_us)
    for n in range(990):
        del held[f"o{n}"]
        timer.discard(f"o{n}")
    assert len(timer) == 10 and timer.entries <= 2 * 10 + 64 + 1 and not timer._due
    timer.close()
