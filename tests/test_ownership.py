"""Partition ownership, tick by tick, with in-memory leases and members (the real ones are
tested against PostgreSQL and Redis in tests/contracts and tests/test_scale_out.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.adapters.inprocess import InProcessBus
from app.adapters.local_limiter import LocalLimiter
from app.adapters.memory_store import MemoryStore
from app.core.order import Order
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.execution.ownership import PartitionOwnership
from app.tasks import TaskSupervisor
from tests.harness import FakeFeed

PARTITIONS = 16


class Leases:
    def __init__(self) -> None:
        self.held: dict[int, tuple[str, int]] = {}  # partition -> (owner, epoch)
        self.released: list[int] = []

    async def acquire(self, partition: int, owner: str, ttl_s: float) -> int | None:
        holder = self.held.get(partition)
        if holder is not None and holder[0] != owner:
            return None
        epoch = (holder[1] if holder else 0) + 1
        self.held[partition] = (owner, epoch)
        return epoch

    async def renew(self, owner: str, ttl_s: float) -> dict[int, int]:
        return {p: epoch for p, (who, epoch) in self.held.items() if who == owner}

    async def release(self, owner: str, partitions: Sequence[int]) -> None:
        for partition in partitions:
            self.held.pop(partition, None)
            self.released.append(partition)

    async def holders(self) -> dict[int, tuple[str, float]]:
        return {p: (who, 10.0) for p, (who, _) in self.held.items()}


class Members:
    async def heartbeat(self, owner: str, ttl_s: float) -> Sequence[str]:
        return [owner]

    async def leave(self, owner: str) -> None:
        return None


class CountingStore(MemoryStore):
    reads = 0
    fail_next_read = False

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        self.reads += 1
        if self.fail_next_read:
            self.fail_next_read = False
            raise OSError("the store went away")
        return await super().open_orders(symbol)


async def _ownership(store: CountingStore) -> tuple[PartitionOwnership, Executor, Leases]:
    executor = Executor(
        store, InProcessBus(), MarketInterest(FakeFeed()), LocalLimiter(0, 0),
        TaskSupervisor(), partitions=PARTITIONS, owner_id="me",
    )  # fmt: skip
    leases = Leases()
    read: list[set[int]] = []

    async def read_partitions(partitions: set[int]) -> None:
        read.append(set(partitions))

    return PartitionOwnership(executor, leases, Members(), read_partitions), executor, leases


async def test_one_tick_adopts_every_free_partition_with_one_read_of_the_store() -> None:
    store = CountingStore()
    ownership, executor, _ = await _ownership(store)
    await ownership.tick()
    assert sorted(ownership.held) == list(range(PARTITIONS))
    assert executor.held_partitions == list(range(PARTITIONS))
    assert store.reads == 1  # not one per partition


async def test_a_failed_adoption_gives_the_partitions_up_for_a_later_tick() -> None:
    store = CountingStore()
    store.fail_next_read = True
    ownership, executor, leases = await _ownership(store)
    with pytest.raises(OSError):
        await ownership.tick()
    assert ownership.held == {} and executor.held_partitions == []
    assert sorted(leases.released) == list(range(PARTITIONS)) and not leases.held
    await ownership.tick()  # the store is back: taken again, from the start
    assert sorted(ownership.held) == list(range(PARTITIONS))
