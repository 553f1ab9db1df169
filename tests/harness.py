"""Intake and execution assembled on real adapters without HTTP, for service-level tests.

The same wiring as the composition root's `all` role: the store, an in-process bus and
command queue, the local limiter, a fake feed behind `MarketInterest`.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from app.adapters.inprocess import InProcessBus, InProcessCommandQueue
from app.adapters.local_limiter import LocalLimiter
from app.core.domain import BookUpdate
from app.core.events import OrderEvent
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.intake.service import IntakeService
from app.ports import OrderStore
from app.schemas import LimitOrderRequest
from app.tasks import TaskSupervisor


class FakeFeed:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down: dict[str, float] = {}

    def acquire(self, symbol: str) -> None:
        self.calls.append(("acquire", symbol))

    def release(self, symbol: str) -> None:
        self.calls.append(("release", symbol))

    def down_since(self, symbol: str | None = None) -> float | None:
        return self.down.get(symbol or "")


def order_request(**fields: object) -> LimitOrderRequest:
    return LimitOrderRequest.model_validate({"symbol": "LTCBTC", "side": "sell", **fields})


class Harness:
    def __init__(
        self, store: OrderStore, *, max_open_orders: int = 0, idle_worker_s: float | None = None
    ) -> None:
        self.store = store
        self.feed = FakeFeed()
        self.bus = InProcessBus()
        self.commands = InProcessCommandQueue()
        self.limiter = LocalLimiter(0, max_open_orders)
        self.tasks = TaskSupervisor()
        self.executor = Executor(
            store, self.bus, MarketInterest(self.feed), self.limiter, self.tasks,
            idle_worker_s=idle_worker_s,
        )  # fmt: skip
        self.intake = IntakeService(
            store, self.commands, self.bus, self.limiter, default_timeout_s=30,
            max_open_orders=max_open_orders, execution_ready=lambda: self.executor.ready,
        )  # fmt: skip
        self.subscription = self.bus.subscribe()
        self.update_id = 0

    async def start(self) -> None:
        await self.intake.start()
        await self.executor.start()
        self.commands.consume(self.executor.on_command)

    async def stop(self) -> None:
        await self.executor.stop()
        await self.intake.stop()
        await self.tasks.close()

    async def crash(self) -> None:
        """As kill -9 would leave it: nothing stopped or flushed, every task just gone."""
        await self.intake.stop()
        await self.tasks.close(timeout=0)

    async def next_event(self) -> OrderEvent:
        async with asyncio.timeout(5):
            event = await self.subscription.queue.get()
        assert event is not None
        return event

    async def event(self, order_id: str, kind: str, timeout: float = 5.0) -> OrderEvent:
        """The next event of `kind` for the order (others are passed over)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.subscription.queue.get()
                if event is not None and event.order_id == order_id and event.kind == kind:
                    return event

    async def submit(self, owner: str = "me", **fields: Any) -> Any:
        submission = await self.intake.submit(owner, order_request(**fields))
        return submission.order

    def quote(
        self, bid: str, bid_qty: str, ask: str = "100", ask_qty: str = "1", symbol: str = "LTCBTC"
    ) -> None:
        self.update_id += 1
        self.executor.on_update(
            BookUpdate(symbol, self.update_id, ((Decimal(bid), Decimal(bid_qty)),),
                       ((Decimal(ask), Decimal(ask_qty)),), received_at=time.time())
        )  # fmt: skip
