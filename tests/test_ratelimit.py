"""app.ratelimit: one sliding-window limiter for order requests (per owner) and the feed."""

from __future__ import annotations

import asyncio
import random

import pytest

from app.ratelimit import SlidingWindowLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let the other waiters run, as a real sleep would


def test_a_burst_of_the_limit_then_the_wait_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 1.0, clock=clock)
    assert [limiter.try_take("a") for _ in range(3)] == [0, 0, 0]
    clock.now += 0.25
    assert limiter.try_take("a") == pytest.approx(0.75)  # the burst's first leaves at +1 s
    assert limiter.try_take("a") == pytest.approx(0.75)  # a refusal takes nothing
    clock.now += 0.75
    assert limiter.try_take("a") == 0
    assert limiter.try_take("a") == 0
    assert limiter.try_take("a") == 0
    assert limiter.try_take("a") > 0  # three in [1, 1.25): never four in any second


def test_the_sustained_rate_is_the_limit_per_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter.per_second(10, clock=clock)
    assert limiter is not None
    allowed = 0
    for _ in range(10_000):  # 10 s of a request every millisecond
        if limiter.try_take("a") == 0:
            allowed += 1
        clock.now += 0.001
    assert 100 <= allowed <= 110


def test_keys_are_limited_apart() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 1.0, clock=clock)
    assert limiter.try_take("a") == limiter.try_take("a") == 0
    assert limiter.try_take("a") > 0
    assert limiter.try_take("b") == limiter.try_take("b") == 0
    assert limiter.try_take("b") > 0
    assert limiter.try_take() == 0  # the default key is a key of its own


def test_per_second_rates() -> None:
    clock = FakeClock()
    half = SlidingWindowLimiter.per_second(0.5, clock=clock)  # one request per 2 s
    assert half is not None and (half.limit, half.window_s) == (1, 2.0)
    assert half.try_take("a") == 0
    assert half.try_take("a") == pytest.approx(2.0)
    clock.now += 1.999
    assert half.try_take("a") == pytest.approx(0.001)
    clock.now += 0.001
    assert half.try_take("a") == 0
    two_and_a_half = SlidingWindowLimiter.per_second(2.5, clock=clock)
    assert two_and_a_half is not None
    assert (two_and_a_half.limit, two_and_a_half.window_s) == (2, pytest.approx(0.8))
    assert SlidingWindowLimiter.per_second(0) is None  # 0: off


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 1.0)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(1, 0.0)


def test_idle_keys_are_forgotten() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 1.0, clock=clock)
    for n in range(100):
        limiter.try_take(n)
    assert len(limiter) == 100
    clock.now += 1.0
    limiter.try_take("new")  # a new key sweeps those a window old
    assert len(limiter) == 1
    clock.now += 0.5
    limiter.try_take("other")  # at most one sweep a window
    assert len(limiter) == 2


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] + window <= at:  # [start, start + window) no longer holds `at`
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_waiters_never_exceed_the_limit_in_any_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(4, 1.1, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    rng = random.Random(7)

    async def sender(count: int) -> None:
        for _ in range(count):
            await limiter.take()
            sent.append(clock.now)
            if rng.random() < 0.3:
                clock.now += rng.random() * 0.2  # some time passes between sends

    async with asyncio.timeout(5):
        await asyncio.gather(*(sender(25) for _ in range(4)))
    assert len(sent) == 100
    assert _max_in_any_window(sent, 1.1) == 4
    assert clock.slept and all(0 < s <= 1.1 + 1e-9 for s in clock.slept)


async def test_take_with_the_real_clock_waits_only_as_long_as_needed() -> None:
    limiter = SlidingWindowLimiter(2, 0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(4):
        await limiter.take("k")
    elapsed = loop.time() - started
    assert 0.015 <= elapsed < 0.5
