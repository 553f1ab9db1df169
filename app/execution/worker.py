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
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import structlog

from app import tracing
from app.backoff import Backoff, retry
from app.clock import now_us, rfc3339
from app.core.decimals import ZERO
from app.core.domain import (
    BookTicker,
    BookUpdate,
    Execution,
    MarketState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from app.core.events import EventKind, OrderEvent, order_event
from app.core.fees import DEFAULT_FEE_RATE, fee_for
from app.core.matching import RestingOrder, SymbolMatcher, engine_limit
from app.core.order import Fill, Order
from app.execution.accounting import PositionBook, balance_deltas
from app.execution.expiry import ExpiryTimer
from app.ports import EventBus, Fence, OrderChange, OrderStore, StoreFenced, StoreUnavailable

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

log = structlog.get_logger(__name__)

MAX_BATCH = 2048
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 2.0
# Only these can succeed on a retry; anything else means our view is wrong (a bug, or a
# value the engine cannot take) and the worker rebuilds itself from the store instead.
_TRANSIENT = (StoreUnavailable, OSError)


def time_in_force_reason(order: Order) -> str:
    """Why an IOC/FOK order (a market order is an IOC) ended after meeting its quote."""
    if order.time_in_force is TimeInForce.FOK:
        return "expired: FOK: the quote could not fill the whole order"
    if order.type is OrderType.MARKET:
        return "expired: market order (IOC): the quote did not fill the rest of the order"
    return "expired: IOC: the quote did not fill the rest of the order"


def _retry_backoff() -> Backoff:
    """How a worker waits between store attempts: doubling, no jitter (one writer)."""
    return Backoff(RETRY_INITIAL_S, RETRY_MAX_S)


class FeedControl(Protocol):
    def acquire(self, symbol: str) -> None: ...

    def release(self, symbol: str) -> None: ...

    def down_since(self, symbol: str) -> float | None: ...


class WorkerHooks(Protocol):
    """What the service keeps track of as orders come and go in a worker."""

    def holding(self, order: Order) -> None:
        """The worker holds this open order (idempotent)."""

    async def ended(self, orders: list[Order]) -> None:
        """These orders ended (filled, cancelled, expired), committed and published."""

    def dropped(self, order: Order) -> None:
        """The worker let go of an order without ending it (it rebuilds from the store)."""

    def idle(self, worker: SymbolWorker) -> bool:
        """The worker has had nothing to do for a while: may it stop? (Forget it if so.)"""


@dataclass(slots=True)
class Add:
    order: Order
    verify: bool = False  # from another process: add only if the store has it open
    trace: dict[str, str] | None = None  # the context AddOrder carried (tracing on)


@dataclass(slots=True)
class Cancel:
    order_id: str


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
        self.ended: list[Order] = []
        self.spans: list[Span] = []  # per traced order, ended once the batch is published
        self.fills: list[tuple[str, Side, Fill]] = []  # (owner, side, fill), as they happened

    def changed(self, order: Order) -> OrderChange:
        change = self.changes.get(order.order_id)
        if change is None:
            change = self.changes[order.order_id] = OrderChange(order, [])
        return change

    def emit(
        self,
        kind: EventKind,
        order: Order,
        fill: Fill | None = None,
        trace: dict[str, str] | None = None,
    ) -> None:
        self.events.append(order_event(kind, order, fill, trace))


class SymbolWorker:
    def __init__(
        self,
        symbol: str,
        store: OrderStore,
        bus: EventBus,
        feed: FeedControl,
        *,
        hooks: WorkerHooks | None = None,
        idle_after_s: float | None = None,
        fence: Fence | None = None,
        fee_rate: Decimal = DEFAULT_FEE_RATE,
    ) -> None:
        self.symbol = symbol
        self.fee_rate = fee_rate
        self.matcher = SymbolMatcher(symbol)
        self.orders: dict[str, Order] = {}
        # The trace context each traced order arrived with (tracing on), while it is open.
        self._traces: dict[str, Context] = {}
        self._store = store
        self._bus = bus
        self._feed = feed
        self._hooks = hooks
        self._idle_after_s = idle_after_s
        self.fence = fence  # beside other executors: our lease on this symbol's partition
        self.fenced = False  # a write was refused: another executor owns the symbol now
        self._to_verify = False  # some Add in the queue needs checking against the store
        # A deque and an event: cheaper per command than asyncio.Queue on the quote path.
        self._commands: deque[Command] = deque()
        self._wakeup = asyncio.Event()
        # Waiting for commands, no batch in flight: a quote that certainly changes nothing
        # but the update id and the quote is applied at once, without the queue.
        self._waiting = False
        self._expiries = ExpiryTimer(
            lambda order_id: self.submit(Expire(order_id)), held=self.orders
        )
        self._subscribed = False
        self._persisted_ledger: tuple[object, object] = ((), ())
        self._log = log.bind(symbol=symbol)
        self.updates_applied = 0
        self.updates_skipped = 0
        self.fills = 0
        self.rebuilds = 0
        self.positions = PositionBook(symbol, store.position)

    def submit_to_verify(self, order: Order, trace: dict[str, str] | None = None) -> None:
        """An order from another process's queue: added only if the store has it open."""
        self._to_verify = True  # read once per batch, not per command on the quote path
        self.submit(Add(order, verify=True, trace=trace))

    def submit(self, command: Command) -> None:
        if type(command) is BookTicker and self._waiting and not self._commands:
            # Nothing is queued before it and nothing is being matched or committed: what
            # processing it next would do is done here, if the matcher can tell that it
            # fills nothing (most quotes); else it is queued as usual.
            taken = self.matcher.take_if_stale_or_quiet(command)
            if taken is not None:
                if taken:
                    self.updates_applied += 1
                else:
                    self.updates_skipped += 1
                return
        self._commands.append(command)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def abandon(self) -> None:
        """This worker died: what it still had queued goes with it (the store has it all)."""
        self._commands.clear()

    async def run(self) -> None:
        commands = self._commands
        try:
            await self._restore_market_state()
            while True:
                if not commands:
                    self._wakeup.clear()
                    if self.orders or self._idle_after_s is None:
                        self._waiting = True
                        try:
                            await self._wakeup.wait()  # the usual case, no coroutine more
                        finally:
                            self._waiting = False
                    elif not await self._wait_or_idle():
                        return
                    continue
                batch = [commands.popleft() for _ in range(min(len(commands), MAX_BATCH))]
                try:
                    if self._to_verify:
                        self._to_verify = False
                        batch = await self._still_open(batch)
                    stop = await self._process(batch)
                except StoreFenced:
                    self._lost_the_partition()
                    return
                except Exception:
                    try:
                        stop = await self._rebuild_after_failure(batch)
                    except StoreFenced:
                        self._lost_the_partition()
                        return
                if stop:
                    await self._persist_market_state()
                    return
        finally:
            self._expiries.close()
            if self._subscribed:
                self._subscribed = False
                self._feed.release(self.symbol)

    def _lost_the_partition(self) -> None:
        """Another executor holds the partition now: stop without writing anything more.
        Nothing is lost: what this worker had not committed is still open in the store,
        and the new owner resumes it from there."""
        self.fenced = True
        self._commands.clear()
        self._log.warning("worker.fenced", fence=repr(self.fence), orders=len(self.orders))

    async def _wait_or_idle(self) -> bool:
        """With no order held: wait for a command; False once idle long enough to stop
        (nothing is lost)."""
        try:
            async with asyncio.timeout(self._idle_after_s):
                await self._wakeup.wait()
            return True
        except TimeoutError:
            pass
        await self._persist_market_state()
        if self._commands or self.orders:
            return True
        # Decided with no await in between: nothing can be routed here once it says yes.
        return self._hooks is None or not self._hooks.idle(self)

    async def _still_open(self, batch: list[Command]) -> list[Command]:
        """Replace each order to verify by what the store holds now; drop it if final."""
        checked: list[Command] = []
        for command in batch:
            if not (isinstance(command, Add) and command.verify):
                checked.append(command)
                continue
            if command.order.order_id in self.orders:
                continue  # already here (recovered when the partition was adopted)
            stored = await self._store.get(command.order.order_id, with_fills=False)
            if stored is not None and not stored.status.is_final:
                checked.append(Add(stored, trace=command.trace))
        return checked

    async def _process(self, commands: list[Command]) -> bool:
        batch = _Batch()
        stop = False
        try:
            for command in commands:
                if isinstance(command, BookUpdate):
                    executions = self.matcher.apply(command)
                    if executions is None:
                        self.updates_skipped += 1
                    else:
                        self.updates_applied += 1
                        if executions:
                            self._record(executions, int(command.received_at * 1e6), batch)
                        if self.matcher.ended:
                            self._end_time_in_force(batch)
                elif isinstance(command, Add):
                    self._add(command.order, batch, command.trace)
                elif isinstance(command, Cancel):
                    reason = "cancelled by request"
                    self._finish(command.order_id, OrderStatus.CANCELLED, reason, batch)
                elif isinstance(command, Expire):
                    reason = self._expiry_reason()
                    self._finish(command.order_id, OrderStatus.EXPIRED, reason, batch)
                elif isinstance(command, StreamLost):
                    self.matcher.forget_quote()
                else:
                    stop = True
            if batch.changes:
                with tracing.batch_span("execution.commit", batch.spans, len(batch.changes)):
                    committed = await self._commit(
                        list(batch.changes.values()), batch.events, batch.fills, stopping=stop
                    )
                if not committed:
                    return True
            self.fills += sum(len(change.new_fills) for change in batch.changes.values())
            if batch.events:
                with tracing.batch_span("execution.publish", batch.spans, len(batch.events)):
                    await self._bus.publish(batch.events)
        except BaseException as exc:
            tracing.fail_all(batch.spans, exc)
            raise
        finally:
            if batch.spans:
                tracing.end_all(batch.spans)
        if batch.ended and self._hooks is not None:
            await self._hooks.ended(batch.ended)
        if self._subscribed and not self.orders:
            self._subscribed = False
            self._feed.release(self.symbol)
        return stop

    def _add(self, order: Order, batch: _Batch, trace: dict[str, str] | None = None) -> None:
        if order.order_id in self.orders:
            return
        if order.price is None and order.side is Side.BUY and order.reserve is None:
            order.reserve = ZERO  # sent by a process that kept no reserve: it locked nothing
        self.orders[order.order_id] = order
        if trace is not None and tracing.ENABLED:
            context = tracing.extract(trace)
            if context is not None:
                self._traces[order.order_id] = context
                tracing.start("execution.add_order", order, context, "consumer").end()
        if self._hooks is not None:
            self._hooks.holding(order)
        if not self._subscribed:
            self._subscribed = True
            self._feed.acquire(self.symbol)
        self._expiries.add(order.order_id, order.expires_at_us)
        resting = RestingOrder(
            order.order_id, order.side, engine_limit(order.side, order.price),
            order.remaining_qty, order.expires_at_us / 1e6, order.time_in_force,
        )  # fmt: skip
        executions = self.matcher.add(resting, now=time.time())
        if executions:
            self._record(executions, now_us(), batch)
        if self.matcher.ended:
            self._end_time_in_force(batch)

    def _end_time_in_force(self, batch: _Batch) -> None:
        """IOC/FOK orders that met their quote with something unfilled: expired, in the
        same batch as that quote's fills and after their events."""
        for order_id in self.matcher.drain_ended():
            order = self.orders.get(order_id)
            if order is not None:
                self._finish(order_id, OrderStatus.EXPIRED, time_in_force_reason(order), batch)

    def _record(self, executions: list[Execution], ts_us: int, batch: _Batch) -> None:
        rate = self.fee_rate
        for execution in executions:
            order = self.orders[execution.order_id]
            price, qty = execution.price, execution.qty
            fee = fee_for(order.side, price, qty, rate)[0] if rate else ZERO
            fill = order.record_fill(execution.update_id, price, qty, ts_us, fee)
            batch.changed(order).new_fills.append(fill)  # type: ignore[attr-defined]
            batch.fills.append((order.owner, order.side, fill))
            trace = self._order_span("execution.fill", order, batch, fill) if self._traces else None
            batch.emit(EventKind.FILL, order, fill, trace)
            self._log.info(
                "order.fill", order_id=order.order_id, seq=fill.seq, price=str(fill.price),
                qty=str(fill.qty), update_id=fill.update_id, status=order.status.value,
            )  # fmt: skip
            if order.status is OrderStatus.FILLED:
                self._release(order, batch)
                batch.emit(EventKind.FILLED, order, trace=trace)

    def _finish(
        self, order_id: str, status: OrderStatus, reason: str, batch: _Batch
    ) -> Order | None:
        order = self.orders.get(order_id)
        if order is None:
            return None
        self.matcher.remove(order_id)
        order.finish(status, reason, now_us())
        trace = self._order_span("execution.end", order, batch) if self._traces else None
        self._release(order, batch)
        batch.changed(order)
        batch.emit(EventKind.ending(status), order, trace=trace)
        self._log.info("order.final", order_id=order_id, status=status.value, reason=reason)
        return order

    def _release(self, order: Order, batch: _Batch) -> None:
        del self.orders[order.order_id]
        self._expiries.discard(order.order_id)
        batch.ended.append(order)
        if self._traces:
            self._traces.pop(order.order_id, None)

    # -- tracing (only orders that arrived with a trace context, tracing on) ---------------

    def _order_span(
        self, name: str, order: Order, batch: _Batch, fill: Fill | None = None
    ) -> dict[str, str] | None:
        """A span in the order's trace, ended once the batch is published; the context
        for its events (None: the order is not traced)."""
        context = self._traces.get(order.order_id)
        if context is None:
            return None
        span = tracing.start(name, order, context)
        if fill is not None:
            span.set_attributes({
                "seq": fill.seq, "price": str(fill.price), "qty": str(fill.qty),
                "update_id": fill.update_id,
            })  # fmt: skip
        batch.spans.append(span)
        return tracing.inject(span)

    def _expiry_reason(self) -> str:
        if self.matcher.last_update_id is None:
            reason = f"expired: no market data was received for {self.symbol}"
        else:
            reason = "expired: not filled before expires_at"
        down_since = self._feed.down_since(self.symbol)
        if down_since is not None:
            reason += f" (the upstream feed has been down since {rfc3339(int(down_since * 1e6))})"
        return reason

    # -- persistence ----------------------------------------------------------------------

    def _market_state_to_persist(self) -> MarketState | None:
        """The symbol's state, if its ledger is or was non-empty (else nothing to keep)."""
        state = self.matcher.market_state()
        if not state.asks and not state.bids and self._persisted_ledger == ((), ()):
            return None
        return state

    async def _commit(
        self,
        changes: list[OrderChange],
        events: list[OrderEvent],
        fills: list[tuple[str, Side, Fill]],
        *,
        stopping: bool,
    ) -> bool:
        """Commit, with the balances and positions the changes move, retrying while the
        store is unavailable: an uncommitted fill is never pushed. Anything that cannot
        succeed on a retry is raised."""
        market = self._market_state_to_persist()
        balances = balance_deltas(changes)

        def failed(exc: BaseException, _delay: float) -> bool:
            self._log.error("order.commit_failed", error=repr(exc), changes=len(changes))
            return not stopping  # stopping: give up, the store has the commands' orders

        try:
            positions, after = await retry(
                lambda: self.positions.fold(fills), _TRANSIENT, _retry_backoff(),
                on_failure=failed,
            )  # fmt: skip
            await retry(
                lambda: self._store.apply(
                    changes, market, events, self.fence, balances=balances, positions=positions
                ),
                _TRANSIENT, _retry_backoff(),
                on_failure=failed,
            )  # fmt: skip
        except _TRANSIENT:
            return False
        self.positions.keep(after)
        if market is not None:
            self._persisted_ledger = (market.asks, market.bids)
        return True

    async def _persist_market_state(self) -> None:
        market = self._market_state_to_persist()
        if market is None or (market.asks, market.bids) == self._persisted_ledger:
            return
        try:
            await self._store.apply([], market, (), self.fence)
        except (*_TRANSIENT, StoreFenced) as exc:
            self._log.warning("market_state.not_saved", error=repr(exc))
            return
        self._persisted_ledger = (market.asks, market.bids)

    async def _restore_market_state(self) -> None:
        def failed(exc: BaseException, _delay: float) -> None:
            self._log.error("market_state.load_failed", error=repr(exc))

        state = await retry(
            lambda: self._store.market_state(self.symbol), _TRANSIENT, _retry_backoff(),
            on_failure=failed,
        )  # fmt: skip
        if state is not None:
            self.matcher.restore(state)
            self._persisted_ledger = (state.asks, state.bids)

    async def _rebuild_after_failure(self, failed: list[Command]) -> bool:
        """A batch failed in a way no retry can mend: start again from what is stored.

        Nothing of the failed batch was committed or published. Quotes in it are dropped;
        its cancels, expiries and stops are handled again at once in a batch of their own
        (so a quote the engine cannot take never holds up a cancel or an expiry, rule 7).
        """
        self.rebuilds += 1
        self._log.exception("worker.batch_failed", commands=len(failed), rebuilds=self.rebuilds)
        old = list(self.orders.values())
        self.orders = {}
        self.matcher = SymbolMatcher(self.symbol)
        self.positions.forget()
        self._expiries.close()
        self._expiries = ExpiryTimer(
            lambda order_id: self.submit(Expire(order_id)), held=self.orders
        )
        self._persisted_ledger = ((), ())
        if self._hooks is not None:
            for order in old:
                self._hooks.dropped(order)
        await self._restore_market_state()
        stored = await self._store.open_orders(self.symbol)
        if self._traces:  # still open: still traced
            still = {order.order_id for order in stored}
            self._traces = {id_: ctx for id_, ctx in self._traces.items() if id_ in still}
        control: list[Command] = [Add(order) for order in stored]
        control += [c for c in failed if isinstance(c, Cancel | Expire | Stop)]
        try:
            return await self._process(control)
        except StoreFenced:
            raise
        except Exception:
            self._log.exception("worker.rebuild_failed")
            return any(isinstance(command, Stop) for command in control)
