"""app.backoff: the one exponential backoff (the feed's reconnects, the workers' store retries)."""

from __future__ import annotations

import pytest

from app.backoff import Backoff, retry


def test_delays_double_from_the_initial_up_to_the_cap() -> None:
    backoff = Backoff(0.05, 2.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert backoff.failures == 8
    assert Backoff(0.5, 30.0).delay(10_000) == 30.0  # no overflow however long it fails
    assert Backoff(1.0, 30.0).delay(0) == 0.0


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 30.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 0.5


def test_equal_jitter_is_between_half_the_delay_and_the_delay() -> None:
    backoff = Backoff(0.5, 30.0, jitter=True)
    for failures in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        samples = [backoff.delay(failures) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert max(samples) - min(samples) > ceiling / 4  # it does spread them
    low = Backoff(0.5, 30.0, jitter=True, rand=lambda a, b: a)
    high = Backoff(0.5, 30.0, jitter=True, rand=lambda a, b: b)
    assert [low.next_delay() for _ in range(3)] == [0.25, 0.5, 1.0]
    assert [high.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1.0)
    with pytest.raises(ValueError):
        Backoff(1.0, 0)


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_retry_sleeps_the_backoff_between_retryable_failures() -> None:
    slept: list[float] = []
    seen: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = Backoff(0.05, 0.15)
    flaky = Flaky([OSError("a"), OSError("b"), OSError("c")])
    result = await retry(
        flaky, (OSError,), backoff, sleep=sleep,
        on_failure=lambda exc, delay: seen.append((str(exc), delay)),
    )  # fmt: skip
    assert result == "done" and flaky.calls == 4
    assert slept == pytest.approx([0.05, 0.1, 0.15])
    assert seen == [("a", 0.05), ("b", 0.1), ("c", 0.15)]  # each failure said once
    assert backoff.failures == 0  # reset on success


async def test_retry_raises_other_errors_at_once() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("no sleep expected")

    flaky = Flaky([ValueError("a bug")])
    with pytest.raises(ValueError):
        await retry(flaky, (OSError,), Backoff(0.05, 1.0), sleep=sleep)
    assert flaky.calls == 1


async def test_retry_gives_up_when_on_failure_says_so() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("no sleep expected")

    flaky = Flaky([OSError("busy")])
    with pytest.raises(OSError, match="busy"):
        await retry(
            flaky, (OSError,), Backoff(0.05, 1.0), sleep=sleep, on_failure=lambda e, d: False
        )
    assert flaky.calls == 1
