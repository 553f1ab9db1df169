"""Intake: accept an order (validated, idempotent, durable), hand it to execution, answer.

It runs no workers. An order is stored, its `accepted` event published and an `AddOrder`
command sent; a cancel is a `CancelOrder` command whose answer comes back the way it would
from another process: through the bus (the order's final event) and the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import NamedTuple, Protocol

import structlog

from app import tracing
from app.clock import now_us
from app.core.account import (
    OpeningBalances,
    assets_of,
    deltas_on_accept,
    market_buy_reserve,
)
from app.core.commands import AddOrder, CancelOrder
from app.core.decimals import ZERO
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.events import EventKind, order_event
from app.core.filters import FilterFailure
from app.core.order import NO_FILLS, Order
from app.core.symbols import fee_asset
from app.ids import new_order_id
from app.ports import (
    CommandQueue,
    DuplicateClientOrderId,
    EventBus,
    ExchangeFilters,
    Limiter,
    OrderPage,
    OrderStore,
    Subscription,
)

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


class OrderRefused(Exception):
    """The exchange would not take the order (an unknown symbol, a filter it fails)."""

    def __init__(self, failure: FilterFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class NewOrder(Protocol):
    """What a client asks for (the HTTP request model has exactly these fields)."""

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def order_size(self) -> Decimal: ...
    @property
    def price(self) -> Decimal | None: ...  # None: a market order
    @property
    def timeout_s(self) -> float | None: ...
    @property
    def client_order_id(self) -> str | None: ...
    @property
    def type(self) -> OrderType: ...
    @property
    def time_in_force(self) -> TimeInForce: ...


class Submission(NamedTuple):
    order: Order  # as accepted (a snapshot), or the existing order for a repeated key
    created: bool  # False: an existing order returned for a repeated client_order_id


class NotReady(Exception):
    pass


class TooManyOpenOrders(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"too many open orders: at most {limit} per owner")
        self.limit = limit


class CancelsUnconfirmed(Exception):
    """Execution did not answer some cancels of a cancel-all in time."""

    def __init__(self, unconfirmed: int, of: int) -> None:
        super().__init__(f"{unconfirmed} of {of} orders were not confirmed cancelled")
        self.unconfirmed = unconfirmed


# How long a cancel waits for execution's answer before it reads what is stored.
CANCEL_WAIT_S = 5.0
# A cancel-all reads the owner's open orders a page at a time, and has at most this many
# cancels in flight at once (each is a command, a wait and two reads).
CANCEL_ALL_PAGE = 500
CANCEL_ALL_CONCURRENCY = 64
_OPEN_STATUSES = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


def _differences(existing: Order, request: NewOrder, timeout_s: float) -> list[str]:
    wanted: dict[str, tuple[object, object]] = {
        "type": (existing.type, request.type),
        "symbol": (existing.symbol, request.symbol),
        "side": (existing.side, request.side),
        "order_size": (existing.order_size, request.order_size),
        "price": (existing.price, request.price),
        "timeout_s": (Decimal(str(existing.timeout_s)), Decimal(str(timeout_s))),
        "time_in_force": (existing.time_in_force, request.time_in_force),
    }
    return [name for name, (have, want) in wanted.items() if have != want]


class _Endings:
    """Futures that resolve when an order's final event passes on the bus.

    The bus is followed only while some cancel waits: a subscription that saw every event
    would wake a task for each of them, on every accepted order and every fill.
    """

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._follower: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None

    def watch(self, order_id: str) -> asyncio.Future[None]:
        if self._subscription is None:
            self._subscription = self._bus.subscribe()
            self._follower = asyncio.create_task(
                self._follow(self._subscription), name="intake-endings"
            )
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(order_id, []).append(future)
        return future

    def unwatch(self, order_id: str, future: asyncio.Future[None]) -> None:
        futures = self._waiting.get(order_id)
        if futures is not None:
            futures.remove(future)
            if not futures:
                del self._waiting[order_id]
        if not self._waiting:
            self.close()

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()  # ends the follower
            self._subscription = self._follower = None

    async def _follow(self, subscription: Subscription) -> None:
        async for event in subscription:
            if event.kind.is_final and event.order_id in self._waiting:
                for future in self._waiting[event.order_id]:
                    if not future.done():
                        future.set_result(None)


class IntakeService:
    def __init__(
        self,
        store: OrderStore,
        commands: CommandQueue,
        bus: EventBus,
        limiter: Limiter,
        *,
        default_timeout_s: float,
        max_open_orders: int = 0,
        execution_ready: Callable[[], bool] = lambda: True,
        paper_balances: Mapping[str, Decimal] | None = None,
        best_ask: Callable[[str], Decimal | None] = lambda symbol: None,
        best_bid: Callable[[str], Decimal | None] = lambda symbol: None,
        filters: ExchangeFilters | None = None,
    ) -> None:
        self._store = store
        # PAPER_BALANCES: what a new owner starts with (None: empty, nothing enforced).
        self._paper_balances = paper_balances
        # The latest ask and bid known to this process: a market buy's reserve, and the
        # price a market order's notional is checked at.
        self._best_ask = best_ask
        self._best_bid = best_bid
        self._commands = commands
        self._bus = bus
        self._limiter = limiter
        self._default_timeout_s = default_timeout_s
        self._max_open = max_open_orders
        self._execution_ready = execution_ready
        self._filters = filters  # None: no exchange rules checked
        self._endings = _Endings(bus)
        # Bound once, as logging is configured by now: `log` is structlog's lazy proxy,
        # which would look the logger up again on every order it logs.
        self._log = log.bind()
        self.accepted = 0
        self._started = False
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Count each owner's open orders from the store."""
        await self._limiter.reset_open(await self._store.open_counts())
        self._started = True

    async def stop(self) -> None:
        self._stopping = True
        self._endings.close()

    @property
    def ready(self) -> bool:
        return self._started and not self._stopping and self._execution_ready()

    # -- orders -------------------------------------------------------------------------

    async def submit(self, owner: str, request: NewOrder) -> Submission:
        """Persist a new order and hand it to execution; `created` is False for a
        repeated client_order_id."""
        if not self.ready:
            raise NotReady()
        timeout_s = request.timeout_s or self._default_timeout_s
        if request.client_order_id is not None:
            existing = await self._store.get_by_client_order_id(owner, request.client_order_id)
            if existing is not None:
                return Submission(self._same_or_conflict(existing, request, timeout_s), False)
        if self._filters is not None:
            # The exchange's rules, before anything is held or stored. Exchange info that
            # cannot be read lets the order through (the filters count it as unchecked).
            price = request.price
            if price is None:  # a market order: notional at the best price, when one is known
                best = (self._best_ask if request.side is Side.BUY else self._best_bid)(
                    request.symbol
                )
                failure = await self._filters.check_market(request.symbol, request.order_size, best)
            else:
                failure = await self._filters.check_limit(request.symbol, price, request.order_size)
            if failure is not None:
                raise OrderRefused(failure)
        if not await self._limiter.reserve_open(owner):
            raise TooManyOpenOrders(self._max_open)
        try:
            return await self._accept(owner, request, timeout_s)
        except BaseException:
            await self._limiter.release_open(owner)
            raise

    async def _accept(self, owner: str, request: NewOrder, timeout_s: float) -> Submission:
        created = now_us()
        order = Order(  # positionally: a keyword call costs more, once per order
            new_order_id(), owner, request.client_order_id, request.symbol, request.side,
            request.order_size, request.price, timeout_s, OrderStatus.OPEN, created, created,
            created + round(timeout_s * 1_000_000), ZERO, ZERO, 0, None, NO_FILLS,
            request.type, request.time_in_force, ZERO,
            # Stored with the order, so that execution needs no lookup per fill.
            fee_asset(request.symbol, request.side),
        )  # fmt: skip
        balances = self._locks(order)  # may refuse: BalanceRefused
        accepted = order_event(EventKind.ACCEPTED, order, trace=tracing.inject())
        try:
            # With the event: a store with an outbox publishes it even if we crash now.
            # With the balances: the lock is taken (or refused) in the same transaction.
            if tracing.ENABLED:  # checked here: even a no-op `with` costs ~0.4 µs
                with tracing.span("intake.store_insert", order):
                    await self._store.insert_order(order, [accepted], balances)
            else:
                await self._store.insert_order(order, [accepted], balances)
        except DuplicateClientOrderId:
            # Two requests raced with the same key: the first one won.
            existing = await self._store.get_by_client_order_id(owner, order.client_order_id or "")
            if existing is None:
                raise
            await self._limiter.release_open(owner)
            return Submission(self._same_or_conflict(existing, request, timeout_s), False)
        self._log.info(
            "order.accepted", order_id=order.order_id, symbol=order.symbol,
            side=order.side.value, size=str(order.order_size), price=str(order.price),
            type=order.type.value, time_in_force=order.time_in_force.value,
        )  # fmt: skip
        self.accepted += 1
        await self._bus.publish([accepted])
        if tracing.ENABLED:
            with tracing.span("intake.send_command", order, kind="producer"):
                await self._commands.send(AddOrder(order, tracing.inject()))
        else:
            await self._commands.send(AddOrder(order))
        return Submission(accepted.order, True)

    def _locks(self, order: Order) -> OpeningBalances:
        """What accepting `order` does to its owner's balances: free → locked (a market
        buy's reserve set first, from the best ask known here), with PAPER_BALANCES for
        an owner the store has not seen. NoAskForMarketBuy if enforced and none is known."""
        enforced = self._paper_balances is not None
        if order.price is None and order.side is Side.BUY:
            ask = self._best_ask(order.symbol)
            order.reserve = market_buy_reserve(
                order.symbol, order.order_size, ask, enforced=enforced
            )
        return OpeningBalances(
            deltas_on_accept(order, assets_of(order.symbol)), self._paper_balances
        )

    @staticmethod
    def _same_or_conflict(existing: Order, request: NewOrder, timeout_s: float) -> Order:
        differences = _differences(existing, request, timeout_s)
        if differences:
            raise IdempotencyConflict(existing, differences)
        return existing

    async def get(self, owner: str, order_id: str) -> Order:
        order = await self._store.get(order_id)
        if order is None or order.owner != owner:
            raise OrderNotFound(order_id)
        return order

    async def list_orders(
        self,
        owner: str,
        *,
        status: OrderStatus | None = None,
        symbol: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> OrderPage:
        return await self._store.list_orders(
            owner, status=status, symbol=symbol, limit=limit, cursor=cursor
        )

    async def cancel(self, owner: str, order_id: str) -> Order:
        """Cancel an open order: it comes back cancelled, or OrderAlreadyFinal if a fill or
        an expiry committed first (whichever the store holds)."""
        order = await self.get(owner, order_id)
        if order.status.is_final:
            raise OrderAlreadyFinal(order)
        if not self.ready:
            raise NotReady()
        return await self._cancel_open(order)

    async def cancel_all(self, owner: str, symbol: str | None = None) -> list[Order]:
        """Cancel every open order of `owner` (of one symbol, or all), newest first; the
        orders as stored once cancelled, with the fills they kept. An order that a fill or
        an expiry ended first is left out. CancelsUnconfirmed if execution did not answer
        every cancel in time (those it did answer stay cancelled: a repeat finds the rest)."""
        if not self.ready:
            raise NotReady()
        orders = await self._open_orders_of(owner, symbol)
        slots = asyncio.Semaphore(CANCEL_ALL_CONCURRENCY)

        async def cancel_one(order: Order) -> Order | None:
            async with slots:
                try:
                    return await self._cancel_open(order)
                except (OrderAlreadyFinal, OrderNotFound):
                    return None  # filled or expired before the cancel: not cancelled by us

        outcomes = await asyncio.gather(
            *(cancel_one(order) for order in orders), return_exceptions=True
        )
        cancelled: list[Order] = []
        unconfirmed = 0
        for outcome in outcomes:
            if isinstance(outcome, NotReady):
                unconfirmed += 1
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome is not None:
                cancelled.append(outcome)
        if unconfirmed:
            raise CancelsUnconfirmed(unconfirmed, len(orders))
        return cancelled

    async def _open_orders_of(self, owner: str, symbol: str | None) -> list[Order]:
        """The owner's open and partially filled orders (of one symbol, or all), newest first."""
        found: list[Order] = []
        for status in _OPEN_STATUSES:
            cursor: int | None = None
            while True:
                page = await self._store.list_orders(
                    owner, status=status, symbol=symbol, limit=CANCEL_ALL_PAGE, cursor=cursor
                )
                found += page.orders
                if page.next_cursor is None:
                    break
                cursor = int(page.next_cursor)
        found.sort(key=lambda order: order.created_at_us, reverse=True)
        return found

    async def _cancel_open(self, order: Order) -> Order:
        """Cancel an order read open: as in `cancel`, once the order is known to be ours."""
        order_id = order.order_id
        ending = self._endings.watch(order_id)  # before the command: its answer can't slip by
        try:
            await self._commands.send(CancelOrder(order_id, order.symbol))
            now = await self._store.get(order_id)  # it may have ended before we watched
            if now is not None and not now.status.is_final:
                try:
                    async with asyncio.timeout(CANCEL_WAIT_S):
                        await ending
                except TimeoutError:
                    log.warning("order.cancel_unanswered", order_id=order_id, wait_s=CANCEL_WAIT_S)
        finally:
            self._endings.unwatch(order_id, ending)
        final = await self._store.get(order_id)
        if final is None:
            raise OrderNotFound(order_id)
        if final.status is OrderStatus.CANCELLED:
            return final
        if final.status.is_final:
            raise OrderAlreadyFinal(final)
        raise NotReady()  # execution did not answer in time: it is starting or stopping
