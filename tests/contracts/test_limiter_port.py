"""The limiter port's contract, written once and run against every adapter.

An adapter joins by adding a factory to `ADAPTERS`: it makes limiters that belong to one
deployment (for a shared adapter, one per api process: they share their counts; for a
local one, each process has its own). The rate rule is `app.ratelimit`'s sliding window
(`limit = max(1, floor(rate))` per window of `limit / rate` s). Time is real (Redis's clock
cannot be faked), so the assertions leave room for a slow machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.adapters.local_limiter import LocalLimiter
from app.adapters.redis_limiter import RedisLimiter
from app.ports import Limiter

# The Redis fixtures (redis_url, redis_db_url), until the root conftest registers them.


@dataclass
class Deployment:
    """Makes limiters of one deployment: `start(rate, max_open)` is one more process."""

    make: Callable[[float, int], Limiter]
    shared: bool  # do processes share their counts?
    opened: list[Any] = field(default_factory=list)

    def start(self, rate_per_s: float = 0, max_open: int = 0) -> Limiter:
        limiter = self.make(rate_per_s, max_open)
        self.opened.append(limiter)
        return limiter


def _local(request: pytest.FixtureRequest) -> Deployment:
    return Deployment(lambda rate, cap: LocalLimiter(rate, cap), shared=False)


def _redis(request: pytest.FixtureRequest) -> Deployment:
    url = request.getfixturevalue("redis_db_url")
    return Deployment(lambda rate, cap: RedisLimiter(url, rate, cap), shared=True)


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], Deployment]] = {
    "local": _local,
    "redis": _redis,
}


@pytest.fixture(params=sorted(ADAPTERS))
async def deployment(request: pytest.FixtureRequest) -> AsyncIterator[Deployment]:
    made = ADAPTERS[request.param](request)
    yield made
    for limiter in made.opened:
        close: Callable[[], Awaitable[None]] | None = getattr(limiter, "close", None)
        if close is not None:
            await close()


async def _takes(limiter: Limiter, owner: str, count: int) -> list[float]:
    return [await limiter.take_request(owner) for _ in range(count)]


# -- request rate ----------------------------------------------------------------------------


async def test_a_burst_of_rate_requests_passes_then_the_next_waits(
    deployment: Deployment,
) -> None:
    limiter = deployment.start(rate_per_s=5)
    assert await _takes(limiter, "alice", 5) == [0.0] * 5
    wait = await limiter.take_request("alice")
    assert 0.5 < wait <= 1.0  # until the first of the burst is a second old


async def test_requests_pass_again_once_the_window_has_moved_on(deployment: Deployment) -> None:
    limiter = deployment.start(rate_per_s=4)
    assert await _takes(limiter, "alice", 2) == [0.0] * 2
    await asyncio.sleep(0.4)
    assert await _takes(limiter, "alice", 2) == [0.0] * 2
    wait = await limiter.take_request("alice")
    assert 0.4 < wait <= 0.6 + 0.05, wait  # the first two leave the window first
    await asyncio.sleep(wait + 0.02)
    assert await _takes(limiter, "alice", 2) == [0.0] * 2  # their two places, no more
    second = await limiter.take_request("alice")
    assert 0.2 < second <= 0.4 + 0.05, second
    await asyncio.sleep(1.0)  # a whole window idle: a whole burst again
    assert await _takes(limiter, "alice", 4) == [0.0] * 4


async def test_a_refused_request_takes_nothing(deployment: Deployment) -> None:
    limiter = deployment.start(rate_per_s=10)
    await _takes(limiter, "alice", 10)
    first = await limiter.take_request("alice")
    second = await limiter.take_request("alice")
    assert 0 < second <= first  # being refused costs nothing: the wait only shrinks
    await asyncio.sleep(first + 0.02)
    assert await limiter.take_request("alice") == 0.0


async def test_each_owner_has_its_own_limit(deployment: Deployment) -> None:
    limiter = deployment.start(rate_per_s=3)
    assert await _takes(limiter, "alice", 3) == [0.0] * 3
    assert await limiter.take_request("alice") > 0
    assert await _takes(limiter, "bob", 3) == [0.0] * 3


async def test_rate_zero_is_off(deployment: Deployment) -> None:
    limiter = deployment.start(rate_per_s=0)
    assert await _takes(limiter, "alice", 200) == [0.0] * 200


async def test_a_fractional_rate_allows_one_per_period(deployment: Deployment) -> None:
    slow = deployment.start(rate_per_s=0.5)  # one per 2 s
    assert await slow.take_request("alice") == 0.0
    assert 1.5 < await slow.take_request("alice") <= 2.0
    odd = deployment.start(rate_per_s=2.5)  # two per 0.8 s
    assert await _takes(odd, "bob", 2) == [0.0] * 2
    assert 0.6 < await odd.take_request("bob") <= 0.8


async def test_the_rate_holds_across_processes(deployment: Deployment) -> None:
    first, second = deployment.start(rate_per_s=10), deployment.start(rate_per_s=10)
    started = time.monotonic()
    waits = await asyncio.gather(
        *(limiter.take_request("alice") for _ in range(15) for limiter in (first, second))
    )
    if time.monotonic() - started >= 0.9:
        pytest.skip("the machine was too slow to make 30 requests inside one window")
    passed = sum(1 for w in waits if w == 0.0)
    assert passed == (10 if deployment.shared else 20)  # else: each process counts its own


# -- open orders ----------------------------------------------------------------------------


async def test_reserve_stops_at_the_cap_and_release_frees_a_place(
    deployment: Deployment,
) -> None:
    limiter = deployment.start(max_open=2)
    assert [await limiter.reserve_open("alice") for _ in range(3)] == [True, True, False]
    assert await limiter.reserve_open("bob")  # per owner
    await limiter.release_open("alice")
    assert await limiter.reserve_open("alice")
    assert not await limiter.reserve_open("alice")
    await limiter.release_open("alice", 2)
    assert [await limiter.reserve_open("alice") for _ in range(3)] == [True, True, False]


async def test_max_open_zero_is_no_cap(deployment: Deployment) -> None:
    limiter = deployment.start(max_open=0)
    assert all([await limiter.reserve_open("alice") for _ in range(100)])


async def test_release_never_goes_below_zero(deployment: Deployment) -> None:
    limiter = deployment.start(max_open=2)
    assert await limiter.reserve_open("alice")
    await limiter.release_open("alice", 5)  # more than were held
    await limiter.release_open("bob")  # never held any
    assert [await limiter.reserve_open("alice") for _ in range(3)] == [True, True, False]
    assert [await limiter.reserve_open("bob") for _ in range(3)] == [True, True, False]


async def test_concurrent_reservations_never_pass_the_cap(deployment: Deployment) -> None:
    limiters = [deployment.start(max_open=5) for _ in range(2)]
    granted = await asyncio.gather(
        *(limiter.reserve_open("alice") for _ in range(10) for limiter in limiters)
    )
    assert sum(granted) == (5 if deployment.shared else 10)


async def test_reset_open_starts_from_the_given_counts(deployment: Deployment) -> None:
    limiter = deployment.start(max_open=3)
    await limiter.reset_open({"alice": 3, "bob": 1, "carol": 0})
    assert not await limiter.reserve_open("alice")
    assert [await limiter.reserve_open("bob") for _ in range(3)] == [True, True, False]
    assert [await limiter.reserve_open("carol") for _ in range(4)] == [True] * 3 + [False]


async def test_a_process_starting_later_keeps_the_live_counts(deployment: Deployment) -> None:
    """Every api process seeds the counts from the store at start. A shared limiter takes
    only the first seeding of the deployment: a process (re)starting while others serve
    must not overwrite counts that include their reservations in flight."""
    first = deployment.start(max_open=2)
    await first.reset_open({"alice": 1})
    assert await first.reserve_open("alice")  # alice: 2, at the cap
    later = deployment.start(max_open=2)
    await later.reset_open({"alice": 0})  # read from the store before the second commit
    if deployment.shared:
        assert not await later.reserve_open("alice")
        assert not await first.reserve_open("alice")
        await later.release_open("alice")  # an order ended: seen by every process
        assert await first.reserve_open("alice")
    else:  # a local limiter is its process's own: the new one starts from what it read
        assert await later.reserve_open("alice")
        assert not await first.reserve_open("alice")
