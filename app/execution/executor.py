"""Execution: one worker per symbol, fed by commands and market data; recovery at start.

The executor consumes intake's commands (add, cancel) and the feed's quotes, routes both to
the symbol's worker, and owns the feed subscriptions through `MarketInterest`. It answers
nobody directly: what it did is in the store, then on the bus.

Alone (`partitions=None`) it executes every symbol. Beside other executors it executes the
symbols of the partitions it holds a lease on (`adopt`/`drop`, driven by
`app/execution/ownership.py`), and every write it makes carries that lease's fence, so a
paused executor that lost a partition can never write for it again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import structlog

from app.clock import now_us
from app.core.commands import AddOrder, CancelOrder, OrderCommand
from app.core.domain import BookUpdate, OrderStatus
from app.core.events import EventKind, order_event
from app.core.fees import DEFAULT_FEE_RATE
from app.core.order import Order
from app.core.partitions import partition_of
from app.execution.accounting import balance_deltas
from app.execution.interest import MarketInterest
from app.execution.worker import Add, Cancel, Stop, StreamLost, SymbolWorker
from app.ports import EventBus, Fence, Limiter, OrderChange, OrderStore
from app.tasks import TaskSupervisor

log = structlog.get_logger(__name__)


class Executor:
    def __init__(
        self,
        store: OrderStore,
        bus: EventBus,
        market: MarketInterest,
        limiter: Limiter,
        tasks: TaskSupervisor,
        *,
        idle_worker_s: float | None = None,
        partitions: int | None = None,
        owner_id: str = "executor",
        fee_rate: Decimal = DEFAULT_FEE_RATE,
    ) -> None:
        self._fee_rate = fee_rate
        self._store = store
        self._bus = bus
        self._market = market
        self._limiter = limiter
        self._tasks = tasks
        self._idle_worker_s = idle_worker_s  # a worker with no order stops after this long
        self._workers: dict[str, SymbolWorker] = {}
        self._tasks_by_symbol: dict[str, asyncio.Task[None]] = {}
        self.partitions = partitions  # None: alone, every symbol is ours
        self.owner_id = owner_id
        self._fences: dict[int, Fence] = {}  # partition -> our lease on it
        # Orders recovered at start that no worker holds yet: ready once there are none.
        self._unheld: set[str] = set()
        self._all_held = asyncio.Event()
        self.status_counts: Counter[str] = Counter()
        self._retired: Counter[str] = Counter()  # totals of workers that have stopped
        self.worker_deaths = 0
        self.ready = False
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Alone: recover every open order, then become ready. Beside others: ready at
        once; each partition is recovered when its lease is adopted.

        Recovered means held by the symbol workers: each has restored its market state
        (the ledgers) and rests its orders, not merely been handed them."""
        if self.partitions is None:
            orders = await self._store.open_orders()
            self._unheld = {order.order_id for order in orders}
            await self._recover(orders, fence=None)
            del orders  # the workers hold them now; the list would double the peak
            if self._unheld:
                await self._all_held.wait()
            self._unheld = set()  # emptied, a set keeps its table: ~40 bytes per order
        self.ready = True

    async def _recover(self, orders: list[Order], fence: Fence | None) -> None:
        """Resume orders still in time and expire the rest (the service was down)."""
        now = now_us()
        expired: list[Order] = []
        resumed = 0
        for order in orders:
            if order.expires_at_us <= now:
                order.finish(
                    OrderStatus.EXPIRED, "expired: the service was down at expires_at", now
                )
                expired.append(order)
                self._unheld.discard(order.order_id)
            else:
                resumed += 1
                self._route(order)
        if expired:
            events = [order_event(EventKind.EXPIRED, order) for order in expired]
            changes = [OrderChange(order) for order in expired]
            await self._store.apply(
                changes, events=events, fence=fence, balances=balance_deltas(changes)
            )  # what they locked is released with their end
            self.status_counts[OrderStatus.EXPIRED.value] += len(expired)
            await self._bus.publish(events)
            for order in expired:
                await self._limiter.release_open(order.owner)
        log.info(
            "executor.recovered", resumed=resumed, expired=len(expired),
            partition=None if fence is None else fence.partition,
        )  # fmt: skip

    # -- partitions (beside other executors) ----------------------------------------------

    def owns(self, symbol: str) -> bool:
        if self.partitions is None:
            return True
        return partition_of(symbol, self.partitions) in self._fences

    def _fence_of(self, symbol: str) -> Fence | None:
        if self.partitions is None:
            return None
        return self._fences.get(partition_of(symbol, self.partitions))

    async def adopt(self, epochs: dict[int, int]) -> None:
        """We hold these partitions' leases (partition -> epoch): resume their open orders,
        read from the store in one pass however many partitions change hands at once."""
        assert self.partitions is not None
        fences = {p: Fence(p, self.owner_id, epoch) for p, epoch in epochs.items()}
        self._fences.update(fences)
        mine: dict[int, list[Order]] = {p: [] for p in fences}
        for order in await self._store.open_orders():
            partition = partition_of(order.symbol, self.partitions)
            if partition in mine:
                mine[partition].append(order)
        for partition, orders in mine.items():
            await self._recover(orders, fences[partition])

    async def drop(self, partition: int, *, hand_over: bool) -> None:
        """Stop executing the partition's symbols. Handing over: finish and commit what
        the workers hold first. Lease lost: just stop (their writes would be fenced)."""
        assert self.partitions is not None
        symbols = [s for s in self._workers if partition_of(s, self.partitions) == partition]
        stopping = []
        for symbol in symbols:
            worker = self._workers.pop(symbol)
            self._retired.update(self._totals_of(worker))
            task = self._tasks_by_symbol.pop(symbol, None)
            for order in worker.orders.values():
                self.dropped(order)
            if hand_over:
                worker.submit(Stop())
                if task is not None:
                    stopping.append(task)
            else:
                worker.abandon()
                if task is not None:
                    task.cancel()
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
        self._fences.pop(partition, None)
        log.info("executor.dropped", partition=partition, hand_over=hand_over, symbols=len(symbols))

    @property
    def held_partitions(self) -> list[int]:
        return sorted(self._fences)

    async def stop(self) -> None:
        self._stopping = True
        self.ready = False
        for worker in self._workers.values():
            worker.submit(Stop())

    # -- inputs: commands and market data ---------------------------------------------------

    def on_remote_command(self, command: OrderCommand) -> None:
        """A command from another process's queue, maybe delivered again after a takeover:
        its worker adds the order only if the store still has it open (its fate may be
        sealed already), checked in the worker so the symbol's commands keep their order."""
        if not self.owns(command.symbol):
            return
        if isinstance(command, AddOrder):
            self._worker(command.symbol).submit_to_verify(command.order, command.trace)
        else:
            self.on_command(command)

    def on_command(self, command: OrderCommand) -> None:
        if isinstance(command, AddOrder):
            self._route(command.order, command.trace)
        elif isinstance(command, CancelOrder):
            worker = self._workers.get(command.symbol)
            if worker is not None:  # none: the order is not open here (final, or unknown)
                worker.submit(Cancel(command.order_id))

    def on_update(self, update: BookUpdate) -> None:
        worker = self._workers.get(update.symbol)
        if worker is not None:
            worker.submit(update)

    def on_stream_lost(self, symbols: set[str]) -> None:
        for symbol in symbols:
            worker = self._workers.get(symbol)
            if worker is not None:
                worker.submit(StreamLost())

    # -- workers --------------------------------------------------------------------------

    def _route(self, order: Order, trace: dict[str, str] | None = None) -> None:
        order.share_common_values()  # it may rest for long: its price etc. kept once
        self._worker(order.symbol).submit(Add(order, trace=trace))

    def _worker(self, symbol: str) -> SymbolWorker:
        worker = self._workers.get(symbol)
        if worker is None:
            worker = self._workers[symbol] = SymbolWorker(
                symbol, self._store, self._bus, self._market, hooks=self,
                idle_after_s=self._idle_worker_s, fence=self._fence_of(symbol),
                fee_rate=self._fee_rate,
            )  # fmt: skip
            task = self._tasks.spawn(worker.run(), name=f"worker:{symbol}")
            self._tasks_by_symbol[symbol] = task
            task.add_done_callback(lambda task: self._worker_ended(worker, task))
        return worker

    def _worker_ended(self, worker: SymbolWorker, task: asyncio.Task[None]) -> None:
        """A worker that died of an error it could not handle is replaced, never gone."""
        if self._workers.get(worker.symbol) is not worker:
            return
        self._retire(worker)
        if task.cancelled() or task.exception() is None or self._stopping:
            return
        if worker.fenced:  # another executor holds the partition now: nothing to revive
            return
        self.worker_deaths += 1
        log.error("worker.replaced", symbol=worker.symbol, deaths=self.worker_deaths)
        for order in worker.orders.values():
            self.dropped(order)
        worker.abandon()
        self._tasks.spawn(self._revive(worker.symbol), name=f"revive:{worker.symbol}")

    async def _revive(self, symbol: str) -> None:
        if not self.owns(symbol):
            return
        for order in await self._store.open_orders(symbol):
            self._route(order)

    # -- WorkerHooks: what workers tell the executor ------------------------------------------

    def holding(self, order: Order) -> None:
        # Which orders are open is what the workers hold (`open_count`): no index of our
        # own, which would cost a dict entry per resting order.
        if self._unheld:
            self._unheld.discard(order.order_id)
            if not self._unheld:
                self._all_held.set()

    async def ended(self, orders: list[Order]) -> None:
        owners: Counter[str] = Counter()
        for order in orders:
            self.status_counts[order.status.value] += 1
            owners[order.owner] += 1
        for owner, count in owners.items():
            await self._limiter.release_open(owner, count)

    def dropped(self, order: Order) -> None:
        pass  # nothing of ours to forget: the open orders are what the workers hold

    def idle(self, worker: SymbolWorker) -> bool:
        if self._stopping or self._workers.get(worker.symbol) is not worker:
            return False
        self._retire(worker)
        return True

    def _retire(self, worker: SymbolWorker) -> None:
        del self._workers[worker.symbol]
        self._tasks_by_symbol.pop(worker.symbol, None)
        self._retired.update(self._totals_of(worker))

    # -- what it reports ------------------------------------------------------------------

    @property
    def open_count(self) -> int:
        """Orders the workers hold (one routed a moment ago counts once its worker has it)."""
        return sum(len(worker.orders) for worker in self._workers.values())

    @staticmethod
    def _totals_of(worker: SymbolWorker) -> dict[str, int]:
        return {
            "fills": worker.fills,
            "applied": worker.updates_applied,
            "skipped": worker.updates_skipped,
            "rebuilds": worker.rebuilds,
        }

    def worker_totals(self) -> dict[str, int]:
        """Counts since start, stopped workers included (they feed monotonic counters)."""
        totals = Counter(self._retired)
        for worker in self._workers.values():
            totals.update(self._totals_of(worker))
        return {key: totals[key] for key in ("fills", "applied", "skipped", "rebuilds")}

    def state(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "open_orders": self.open_count,
            "symbols": sorted(s for s, w in self._workers.items() if w.orders),
            "workers": len(self._workers),
            "worker_rebuilds": self.worker_totals()["rebuilds"],
            "worker_deaths": self.worker_deaths,
            "partitions": None if self.partitions is None else self.held_partitions,
        }
