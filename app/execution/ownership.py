"""Which executor executes which partition of symbols, when several run side by side.

Every tick an executor renews its leases (losing any it failed to renew in time), says it
is alive, and moves toward its fair share, ceil(partitions / live executors): above it, it
hands partitions over (finish and commit, then release, so the next owner can take them at
once); below it, it takes partitions nobody holds. A killed executor's leases simply expire
(`lease_ttl_s`), and its partitions are taken within about `lease_ttl_s + tick_s`.

Before a partition's symbols run here, its open orders are recovered from the store
(`Executor.adopt`); the command queue is told which partitions to read only after that, so
commands meet the orders they are about.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from app.execution.executor import Executor
from app.ports import PartitionLeases

log = structlog.get_logger(__name__)

LEASE_TTL_S = 10.0  # takeover after a kill -9 within about this plus a tick (< 15 s)
TICK_S = 1.0


class Members(Protocol):
    """Who is alive: each executor says so every tick; silence past the TTL means gone."""

    async def heartbeat(self, owner: str, ttl_s: float) -> Sequence[str]:
        """Record `owner` as alive for `ttl_s`; every live owner, `owner` included."""

    async def leave(self, owner: str) -> None: ...


class PartitionOwnership:
    def __init__(
        self,
        executor: Executor,
        leases: PartitionLeases,
        members: Members,
        read_partitions: Callable[[set[int]], Awaitable[None]],
        *,
        lease_ttl_s: float = LEASE_TTL_S,
        tick_s: float = TICK_S,
    ) -> None:
        assert executor.partitions is not None
        self._executor = executor
        self._leases = leases
        self._members = members
        self._read_partitions = read_partitions
        self._owner = executor.owner_id
        self._partitions = executor.partitions
        self._ttl_s = lease_ttl_s
        self._tick_s = tick_s
        self._held: dict[int, int] = {}  # partition -> epoch
        self._lock = asyncio.Lock()  # a tick and a handover never interleave

    @property
    def held(self) -> dict[int, int]:
        return dict(self._held)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a store or bus hiccup: leases simply expire if it lasts
                log.exception("ownership.tick_failed", owner=self._owner)
            await asyncio.sleep(self._tick_s)

    async def tick(self) -> None:
        async with self._lock:
            renewed = await self._leases.renew(self._owner, self._ttl_s)
            lost = [p for p in self._held if p not in renewed]
            if lost:
                for partition in lost:
                    log.warning("ownership.lease_lost", owner=self._owner, partition=partition)
                    del self._held[partition]
                await self._read_partitions(set(self._held))
                for partition in lost:
                    await self._executor.drop(partition, hand_over=False)
            live = await self._members.heartbeat(self._owner, self._ttl_s)
            share = math.ceil(self._partitions / max(1, len(live)))
            if len(self._held) > share:
                await self._hand_over(sorted(self._held)[share:])
                return
            holders = await self._leases.holders()
            adopted: dict[int, int] = {}
            for partition in range(self._partitions):
                if len(self._held) + len(adopted) >= share:
                    break
                if partition in self._held or partition in holders:
                    continue
                epoch = await self._leases.acquire(partition, self._owner, self._ttl_s)
                if epoch is not None:
                    adopted[partition] = epoch
            if adopted:
                self._held.update(adopted)
                try:
                    await self._executor.adopt(adopted)  # one pass over the open orders
                except Exception:
                    # Not resumed: give them up, so that a later tick (here or elsewhere)
                    # takes them again from the start instead of holding them half-done.
                    for partition in adopted:
                        del self._held[partition]
                        await self._executor.drop(partition, hand_over=False)
                    await self._leases.release(self._owner, sorted(adopted))
                    raise
                # Read their commands only now that their orders are back.
                await self._read_partitions(set(self._held))
                log.info("ownership.adopted", owner=self._owner, partitions=sorted(adopted))

    async def _hand_over(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._held.pop(partition, None)
        await self._read_partitions(set(self._held))  # no new commands for them here
        for partition in partitions:
            await self._executor.drop(partition, hand_over=True)
        await self._leases.release(self._owner, partitions)
        log.info("ownership.handed_over", owner=self._owner, partitions=partitions)

    async def leave(self) -> None:
        """On SIGTERM: hand every partition over now, and stop counting as alive."""
        async with self._lock:
            await self._hand_over(sorted(self._held))
            await self._members.leave(self._owner)
