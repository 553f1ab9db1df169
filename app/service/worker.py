"""One symbol's order flow: match, commit, then publish, strictly in that order.

Everything that changes an order of this symbol (quotes, new orders, cancels, expiries)
goes through this worker's queue, so the engine is only ever touched by one task and
an order's events leave in the order they happened. Commands that queue up while a
commit is running are handled together and committed in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from app.bus import EventBus, OrderEvent, order_event
from app.clock import now_us
from app.domain import BookUpdate, Execution, OrderStatus
from app.engine.matching import RestingOrder, SymbolMatcher
from app.order import Order
from app.schemas import fill_json
from app.service.expiry import ExpiryTimer
from app.store.base import OrderChange, OrderStore

log = structlog.get_logger(__name__)

MAX_BATCH = 2048
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 2.0


class FeedControl(Protocol):
    def acquire(self, symbol: str) -> None: ...

    def release(self, symbol: str) -> None: ...


@dataclass(slots=True)
class Add:
    order: Order


@dataclass(slots=True)
class Cancel:
    order_id: str
    reply: asyncio.Future[Order | None]


@dataclass(slots=True)
class Expire:
    order_id: str


@dataclass(slots=True)
class StreamLost:
    pass


@dataclass(slots=True)
class Stop:
    pass


Command = BookUpdate | Add | Cancel | Expire | StreamLost | Stop


class _Batch:
    """What one round of commands changed, to commit and then publish."""

    def __init__(self) -> None:
        self.changes: dict[str, OrderChange] = {}
        self.events: list[OrderEvent] = []
        self.replies: list[tuple[asyncio.Future[Order | None], Order | None]] = []

    def changed(self, order: Order) -> OrderChange:
        change = self.changes.get(order.order_id)
        if change is None:
            change = self.changes[order.order_id] = OrderChange(order, [])
        return change

    def emit(self, event: str, order: Order, fill: dict[str, object] | None = None) -> None:
        self.events.append(order_event(event, order, fill))


class SymbolWorker:
    def __init__(
        self,
        symbol: str,
        store: OrderStore,
        bus: EventBus,
        feed: FeedControl,
        *,
        on_final: Callable[[Order], None] | None = None,
    ) -> None:
        self.symbol = symbol
        self.matcher = SymbolMatcher(symbol)
        self.orders: dict[str, Order] = {}
        self._store = store
        self._bus = bus
        self._feed = feed
        self._on_final = on_final
        # A deque and an event: cheaper per command than asyncio.Queue on the quote path.
        self._commands: deque[Command] = deque()
        self._wakeup = asyncio.Event()
        self._expiries = ExpiryTimer(lambda order_id: self.submit(Expire(order_id)))
        self._subscribed = False
        self._log = log.bind(symbol=symbol)
        self.updates_applied = 0
        self.updates_skipped = 0
        self.fills = 0

    def submit(self, command: Command) -> None:
        self._commands.append(command)
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def run(self) -> None:
        commands = self._commands
        try:
            while True:
                if not commands:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                batch = [commands.popleft() for _ in range(min(len(commands), MAX_BATCH))]
                if await self._process(batch):
                    return
        finally:
            self._expiries.close()

    async def _process(self, commands: list[Command]) -> bool:
        batch = _Batch()
        stop = False
        for command in commands:
            if isinstance(command, BookUpdate):
                executions = self.matcher.apply(command)
                if executions is None:
                    self.updates_skipped += 1
                else:
                    self.updates_applied += 1
                    if executions:
                        self._record(executions, int(command.received_at * 1e6), batch)
            elif isinstance(command, Add):
                self._add(command.order, batch)
            elif isinstance(command, Cancel):
                order = self._finish(
                    command.order_id, OrderStatus.CANCELLED, "cancelled by request", batch
                )
                batch.replies.append((command.reply, order))
            elif isinstance(command, Expire):
                self._finish(command.order_id, OrderStatus.EXPIRED, self._expiry_reason(), batch)
            elif isinstance(command, StreamLost):
                self.matcher.forget_quote()
            else:
                stop = True
        if batch.changes:
            committed = await self._commit(list(batch.changes.values()), stopping=stop)
            if not committed:
                return True
        self.fills += sum(len(change.new_fills) for change in batch.changes.values())
        if batch.events:
            await self._bus.publish(batch.events)
        for reply, order in batch.replies:
            if not reply.done():
                reply.set_result(order)
        if self._subscribed and not self.orders:
            self._subscribed = False
            self._feed.release(self.symbol)
        return stop

    def _add(self, order: Order, batch: _Batch) -> None:
        if order.order_id in self.orders:
            return
        self.orders[order.order_id] = order
        if not self._subscribed:
            self._subscribed = True
            self._feed.acquire(self.symbol)
        self._expiries.add(order.order_id, order.expires_at_us)
        resting = RestingOrder(
            order.order_id, order.side, order.price, order.remaining_qty,
            order.expires_at_us / 1e6,
        )  # fmt: skip
        executions = self.matcher.add(resting, now=time.time())
        if executions:
            self._record(executions, now_us(), batch)

    def _record(self, executions: list[Execution], ts_us: int, batch: _Batch) -> None:
        for execution in executions:
            order = self.orders[execution.order_id]
            fill = order.record_fill(execution.update_id, execution.price, execution.qty, ts_us)
            batch.changed(order).new_fills.append(fill)  # type: ignore[attr-defined]
            batch.emit("fill", order, fill_json(fill))
            self._log.info(
                "order.fill", order_id=order.order_id, seq=fill.seq, price=str(fill.price),
                qty=str(fill.qty), update_id=fill.update_id, status=order.status.value,
            )  # fmt: skip
            if order.status is OrderStatus.FILLED:
                self._release(order)
                batch.emit("filled", order)

    def _finish(
        self, order_id: str, status: OrderStatus, reason: str, batch: _Batch
    ) -> Order | None:
        order = self.orders.get(order_id)
        if order is None:
            return None
        self.matcher.remove(order_id)
        order.finish(status, reason, now_us())
        self._release(order)
        batch.changed(order)
        batch.emit(status.value, order)
        self._log.info("order.final", order_id=order_id, status=status.value, reason=reason)
        return order

    def _release(self, order: Order) -> None:
        del self.orders[order.order_id]
        self._expiries.discard(order.order_id)
        if self._on_final is not None:
            self._on_final(order)

    def _expiry_reason(self) -> str:
        if self.matcher.last_update_id is None:
            return f"expired: no market data was received for {self.symbol}"
        return "expired: not filled before expires_at"

    async def _commit(self, changes: list[OrderChange], *, stopping: bool) -> bool:
        """Commit, retrying until the store takes it: an uncommitted fill is never pushed."""
        delay = RETRY_INITIAL_S
        while True:
            try:
                await self._store.apply(changes)
                return True
            except Exception as exc:
                self._log.error("order.commit_failed", error=repr(exc), changes=len(changes))
                if stopping:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
