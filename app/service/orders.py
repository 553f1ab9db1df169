"""The order service: accept, look up, cancel, recover; routes market data to workers."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any, NamedTuple

import structlog

from app.bus import EventBus
from app.bus import order_event as _event
from app.clock import now_us
from app.domain import BookUpdate, OrderStatus
from app.ids import new_order_id
from app.order import Order
from app.schemas import LimitOrderRequest, ListQuery
from app.service.worker import Add, Cancel, FeedControl, Stop, StreamLost, SymbolWorker
from app.store.base import DuplicateClientOrderId, OrderChange, OrderPage, OrderStore
from app.tasks import TaskSupervisor

log = structlog.get_logger(__name__)


class OrderNotFound(Exception):
    pass


class OrderAlreadyFinal(Exception):
    def __init__(self, order: Order) -> None:
        super().__init__(f"order {order.order_id} is already {order.status.value}")
        self.order = order


class IdempotencyConflict(Exception):
    def __init__(self, existing: Order, fields: list[str]) -> None:
        super().__init__(
            f"client_order_id {existing.client_order_id!r} is already used by order "
            f"{existing.order_id} with different {', '.join(fields)}"
        )
        self.existing = existing
        self.fields = fields


class Submission(NamedTuple):
    order: Order
    created: bool  # False: an existing order returned for a repeated client_order_id
    view: dict[str, Any] | None = None  # the order object as published, when created


class NotReady(Exception):
    pass


class TooManyOpenOrders(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"too many open orders: at most {limit} per owner")
        self.limit = limit


def _differences(existing: Order, request: LimitOrderRequest, timeout_s: float) -> list[str]:
    wanted: dict[str, tuple[object, object]] = {
        "symbol": (existing.symbol, request.symbol),
        "side": (existing.side, request.side),
        "order_size": (existing.order_size, request.order_size),
        "price": (existing.price, request.price),
        "timeout_s": (Decimal(str(existing.timeout_s)), Decimal(str(timeout_s))),
    }
    return [name for name, (have, want) in wanted.items() if have != want]


class OrderService:
    def __init__(
        self,
        store: OrderStore,
        bus: EventBus,
        feed: FeedControl,
        tasks: TaskSupervisor,
        *,
        default_timeout_s: float,
        max_open_orders: int = 0,
        idle_worker_s: float | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._feed = feed
        self._tasks = tasks
        self._default_timeout_s = default_timeout_s
        self._workers: dict[str, SymbolWorker] = {}
        self._idle_worker_s = idle_worker_s  # a worker with no order stops after this long
        self._open: dict[str, str] = {}  # order_id -> symbol, for every order a worker holds
        self._max_open = max_open_orders
        # Open orders per owner, counting those being stored right now (reserved first).
        self._open_by_owner: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.worker_deaths = 0
        self.ready = False
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Recover: resume orders still in time, expire the rest, then become ready."""
        now = now_us()
        expired: list[Order] = []
        resumed = 0
        for order in await self._store.open_orders():
            if order.expires_at_us <= now:
                order.finish(
                    OrderStatus.EXPIRED, "expired: the service was down at expires_at", now
                )
                expired.append(order)
            else:
                resumed += 1
                self._route(order)
        if expired:
            await self._store.apply([OrderChange(order) for order in expired])
            self.status_counts[OrderStatus.EXPIRED.value] += len(expired)
            await self._bus.publish([_event(order.status.value, order) for order in expired])
        self.ready = True
        log.info("service.recovered", resumed=resumed, expired=len(expired))

    async def stop(self) -> None:
        self._stopping = True
        self.ready = False
        for worker in self._workers.values():
            worker.submit(Stop())

    # -- market data ----------------------------------------------------------------------

    def on_update(self, update: BookUpdate) -> None:
        worker = self._workers.get(update.symbol)
        if worker is not None:
            worker.submit(update)

    def on_stream_lost(self, symbols: set[str]) -> None:
        for symbol in symbols:
            worker = self._workers.get(symbol)
            if worker is not None:
                worker.submit(StreamLost())

    # -- orders -------------------------------------------------------------------------

    async def submit(self, owner: str, request: LimitOrderRequest) -> Submission:
        """Persist and start filling a new order; `created` is False for a repeated key."""
        if not self.ready:
            raise NotReady()
        timeout_s = request.timeout_s or self._default_timeout_s
        if request.client_order_id is not None:
            existing = await self._store.get_by_client_order_id(owner, request.client_order_id)
            if existing is not None:
                return Submission(self._same_or_conflict(existing, request, timeout_s), False)
        if self._max_open and self._open_by_owner[owner] >= self._max_open:
            raise TooManyOpenOrders(self._max_open)
        self._open_by_owner[owner] += 1  # reserved while it is stored
        try:
            return await self._accept(owner, request, timeout_s)
        finally:
            self._open_by_owner[owner] -= 1

    async def _accept(self, owner: str, request: LimitOrderRequest, timeout_s: float) -> Submission:
        created = now_us()
        order = Order(
            order_id=new_order_id(),
            owner=owner,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_size=request.order_size,
            price=request.price,
            timeout_s=timeout_s,
            status=OrderStatus.OPEN,
            created_at_us=created,
            updated_at_us=created,
            expires_at_us=created + round(timeout_s * 1_000_000),
        )
        try:
            await self._store.insert_order(order)
        except DuplicateClientOrderId:
            # Two requests raced with the same key: the first one won.
            existing = await self._store.get_by_client_order_id(owner, order.client_order_id or "")
            if existing is None:
                raise
            return Submission(self._same_or_conflict(existing, request, timeout_s), False)
        log.info(
            "order.accepted", order_id=order.order_id, symbol=order.symbol,
            side=order.side.value, size=str(order.order_size), price=str(order.price),
        )  # fmt: skip
        self.status_counts[OrderStatus.OPEN.value] += 1
        accepted = _event("accepted", order)
        await self._bus.publish([accepted])
        self._route(order)
        return Submission(order, True, accepted.order)

    @staticmethod
    def _same_or_conflict(existing: Order, request: LimitOrderRequest, timeout_s: float) -> Order:
        differences = _differences(existing, request, timeout_s)
        if differences:
            raise IdempotencyConflict(existing, differences)
        return existing

    def _route(self, order: Order) -> None:
        self.holding(order)
        self._worker(order.symbol).submit(Add(order))

    def _worker(self, symbol: str) -> SymbolWorker:
        worker = self._workers.get(symbol)
        if worker is None:
            worker = self._workers[symbol] = SymbolWorker(
                symbol, self._store, self._bus, self._feed, hooks=self,
                idle_after_s=self._idle_worker_s,
            )  # fmt: skip
            task = self._tasks.spawn(worker.run(), name=f"worker:{symbol}")
            task.add_done_callback(lambda task: self._worker_ended(worker, task))
        return worker

    def _worker_ended(self, worker: SymbolWorker, task: asyncio.Task[None]) -> None:
        """A worker that died of an error it could not handle is replaced, never gone."""
        if self._workers.get(worker.symbol) is not worker:
            return
        del self._workers[worker.symbol]
        if task.cancelled() or task.exception() is None or self._stopping:
            return
        self.worker_deaths += 1
        log.error("worker.replaced", symbol=worker.symbol, deaths=self.worker_deaths)
        for order in worker.orders.values():
            self.dropped(order)
        worker.abandon()
        self._tasks.spawn(self._revive(worker.symbol), name=f"revive:{worker.symbol}")

    async def _revive(self, symbol: str) -> None:
        for order in await self._store.open_orders(symbol):
            self._route(order)

    # -- WorkerHooks: what workers tell the service ------------------------------------------

    def holding(self, order: Order) -> None:
        if order.order_id not in self._open:
            self._open[order.order_id] = order.symbol
            self._open_by_owner[order.owner] += 1

    def final(self, order: Order) -> None:
        self.dropped(order)
        self.status_counts[order.status.value] += 1

    def dropped(self, order: Order) -> None:
        if self._open.pop(order.order_id, None) is not None:
            self._open_by_owner[order.owner] -= 1
            if not self._open_by_owner[order.owner]:
                del self._open_by_owner[order.owner]

    def idle(self, worker: SymbolWorker) -> bool:
        if self._stopping or self._workers.get(worker.symbol) is not worker:
            return False
        del self._workers[worker.symbol]
        return True

    async def get(self, owner: str, order_id: str) -> Order:
        order = await self._store.get(order_id)
        if order is None or order.owner != owner:
            raise OrderNotFound(order_id)
        return order

    async def list_orders(self, owner: str, query: ListQuery) -> OrderPage:
        return await self._store.list_orders(
            owner,
            status=query.status,
            symbol=query.symbol.upper() if query.symbol else None,
            limit=query.limit,
            cursor=None if query.cursor is None else int(query.cursor),
        )

    async def cancel(self, owner: str, order_id: str) -> Order:
        """Cancel an open order: 200 with it cancelled, or OrderAlreadyFinal, whichever
        committed first (a fill or an expiry racing the cancel wins only if it did)."""
        order = await self.get(owner, order_id)
        if order.status.is_final:
            raise OrderAlreadyFinal(order)
        if self._stopping or not self.ready:
            raise NotReady()
        worker = self._workers.get(order.symbol)
        cancelled = None
        if worker is not None:
            # The worker answers after committing everything before the cancel, so the
            # store read below sees how the order ended if the cancel came too late.
            reply: asyncio.Future[Order | None] = asyncio.get_running_loop().create_future()
            worker.submit(Cancel(order_id, reply))
            cancelled = await reply
        final = await self._store.get(order_id)
        if final is None:
            raise OrderNotFound(order_id)
        if cancelled is not None:
            return final
        if final.status.is_final:
            raise OrderAlreadyFinal(final)
        raise NotReady()  # stored open, yet no worker holds it: only while starting

    @property
    def open_count(self) -> int:
        return len(self._open)

    def worker_totals(self) -> dict[str, int]:
        workers = self._workers.values()
        return {
            "fills": sum(w.fills for w in workers),
            "applied": sum(w.updates_applied for w in workers),
            "skipped": sum(w.updates_skipped for w in workers),
        }

    def state(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "open_orders": len(self._open),
            "symbols": sorted(s for s, w in self._workers.items() if w.orders),
            "workers": len(self._workers),
            "worker_rebuilds": sum(w.rebuilds for w in self._workers.values()),
            "worker_deaths": self.worker_deaths,
        }
