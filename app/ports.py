"""The ports: what intake, execution and push need from the world, as small protocols.

Each is implemented by adapters (`app/adapters/`): the store by SQLite and memory, the bus
and the command queue in process, the market feed by the Binance client, the exchange's
filters by its exchangeInfo client, the limiter in process. The composition root
(`app.application`) picks them from settings and the role; a contract suite per port
(`tests/contracts/`) runs against every adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from app.core.account import AssetBalance, OpeningBalances, OwnerDelta, PositionRow
from app.core.commands import OrderCommand
from app.core.domain import MarketState, OrderStatus
from app.core.events import OrderEvent
from app.core.filters import FilterFailure
from app.core.order import Fill, Order

# -- the store ---------------------------------------------------------------------------


class StoreError(Exception):
    """The store could not complete a write; nothing of it was kept."""


class StoreUnavailable(StoreError):
    """The database could not take the write now (busy, locked, I/O): it may on a retry."""


class StoreConflict(StoreError):
    """The write contradicts what is stored (a final order, a fill already stored).

    Retrying cannot help: the writer's view is wrong and must be rebuilt from the store.
    """


class StoreFenced(StoreConflict):
    """The writer no longer holds the lease of the partition it wrote for: another executor
    owns those symbols now, and this write is refused whole."""


class DuplicateClientOrderId(Exception):
    """Another order of this owner already carries this client_order_id."""


@dataclass(slots=True)
class OrderChange:
    """An order's new totals and status, with the fills that produced them."""

    order: Order
    new_fills: Sequence[Fill] = ()


@dataclass(frozen=True, slots=True)
class Fence:
    """A write made by `owner` for `partition`, under the lease numbered `epoch`."""

    partition: int
    owner: str
    epoch: int


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """`owner`'s position in `symbol` is now `row` (its whole state)."""

    owner: str
    symbol: str
    row: PositionRow


@dataclass(slots=True)
class AccountState:
    """One owner's balances (by asset) and positions (by symbol), as of one commit."""

    balances: dict[str, AssetBalance]
    positions: dict[str, PositionRow]


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None


class OrderStore(Protocol):
    async def insert_order(
        self,
        order: Order,
        events: Sequence[OrderEvent] = (),
        balances: OpeningBalances | None = None,
    ) -> None:
        """Durably store a new order; raises DuplicateClientOrderId or StoreError.

        `events` go into the store's outbox in the same transaction, where it has one
        (an in-process deployment publishes on its bus after the commit instead).

        `balances`: in the same transaction, an owner never seen before is given the
        opening balances first, then the order's deltas are applied; when enforced, an
        order whose deltas take more from free than is free is refused with
        InsufficientBalance and nothing is stored."""

    async def apply(
        self,
        changes: Sequence[OrderChange],
        market: MarketState | None = None,
        events: Sequence[OrderEvent] = (),
        fence: Fence | None = None,
        balances: Sequence[OwnerDelta] = (),
        positions: Sequence[PositionUpdate] = (),
    ) -> None:
        """Durably store fills, order updates, the symbol's market state, `events` (to
        the outbox, where there is one), the balance deltas and the new positions they
        cause, all or nothing (a fill is never refused for its balance). With a `fence`,
        refuse the whole write (StoreFenced) unless the writer still holds that
        partition's lease."""

    async def get(self, order_id: str, *, with_fills: bool = True) -> Order | None:
        """The order and its fills as of one committed state (never torn by a commit)."""

    async def get_by_client_order_id(self, owner: str, client_order_id: str) -> Order | None: ...

    async def list_orders(
        self,
        owner: str,
        *,
        status: OrderStatus | None,
        symbol: str | None,
        limit: int,
        cursor: int | None,
    ) -> OrderPage: ...

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders still open or partially filled (of one symbol, or all), oldest first."""

    async def open_counts(self) -> dict[str, int]:
        """How many orders each owner has open (open or partially filled)."""

    async def market_state(self, symbol: str) -> MarketState | None:
        """What `apply` last stored for the symbol, if anything."""

    async def account(self, owner: str) -> AccountState:
        """The owner's balances and positions, as of one commit."""

    async def position(self, owner: str, symbol: str) -> PositionRow | None:
        """The owner's position in the symbol, if it ever traded it."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


# -- the bus and the command queue -------------------------------------------------------


class Subscription(Protocol):
    """One consumer's view of the bus: every event published after it was made, in order."""

    def __aiter__(self) -> AsyncIterator[OrderEvent]: ...

    def close(self) -> None: ...


class EventBus(Protocol):
    """Order events, published only after the change they describe is committed."""

    async def publish(self, events: Sequence[OrderEvent]) -> None: ...

    def subscribe(self, maxsize: int = 0) -> Subscription:
        """A new subscription; past `maxsize` queued events it ends (never drops silently)."""


CommandHandler = Callable[[OrderCommand], None]


class CommandQueue(Protocol):
    """Intake's commands to execution, delivered in order per symbol."""

    async def send(self, command: OrderCommand) -> None: ...

    def consume(self, handler: CommandHandler) -> None:
        """Deliver every command (those already sent first) to `handler`, from now on."""

    @property
    def lag_s(self) -> float:
        """How long the last command handled had waited since it was sent (0 when idle)."""


# -- per-owner limits, and market data ---------------------------------------------------


class Limiter(Protocol):
    """Per owner: order requests per second, and orders open at once."""

    async def take_request(self, owner: str) -> float:
        """Count one order request: 0 if allowed, else the seconds until one would be."""

    async def reserve_open(self, owner: str) -> bool:
        """Hold a place for one more open order; False if the owner is at the cap."""

    async def release_open(self, owner: str, count: int = 1) -> None:
        """Orders of the owner ended (or were never stored): free their places."""

    async def reset_open(self, counts: Mapping[str, int]) -> None:
        """Start from these open-order counts (read from the store at start)."""


class ExchangeFilters(Protocol):
    """The exchange's rules for an order (Binance's symbol filters): intake asks before it
    stores anything. None when an order may be taken, else why it may not."""

    async def check_limit(self, symbol: str, price: Decimal, qty: Decimal) -> FilterFailure | None:
        """The failure of a limit order of `qty` at `price`, or None (also when unchecked)."""

    async def check_market(
        self, symbol: str, qty: Decimal, best_price: Decimal | None
    ) -> FilterFailure | None:
        """The failure of a market order of `qty`, its notional valued at `best_price` (the
        ask for a buy, the bid for a sell; None: not known), or None (also when unchecked)."""

    def state(self) -> dict[str, Any]:
        """For /readyz: {"exchange_info": "ok" | "unavailable" | "off", "unchecked_orders": n}."""

    async def close(self) -> None: ...


class MarketFeed(Protocol):
    """Upstream market data: subscribed per symbol while anyone holds it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def acquire(self, symbol: str) -> None: ...

    def release(self, symbol: str) -> None: ...

    def down_since(self, symbol: str | None = None) -> float | None:
        """When the current outage began (time.time()), None while connected."""

    def state(self) -> dict[str, Any]: ...


# -- scale-out: who executes which partition, and events leaving through an outbox ---------


@runtime_checkable
class PartitionLeases(Protocol):
    """Leases on partitions of symbols, numbered so that a lost lease fences its writes."""

    async def acquire(self, partition: int, owner: str, ttl_s: float) -> int | None:
        """Take the partition if it is free, expired or already ours: its new epoch, or
        None if another owner holds it."""

    async def renew(self, owner: str, ttl_s: float) -> dict[int, int]:
        """Extend every lease the owner still holds: partition -> epoch."""

    async def release(self, owner: str, partitions: Sequence[int]) -> None:
        """Give the partitions up now (a handover), so another owner can take them at once."""

    async def holders(self) -> dict[int, tuple[str, float]]:
        """partition -> (owner, seconds left on its lease), for live leases."""


EventPublisher = Callable[[list[OrderEvent]], Awaitable[None]]


@runtime_checkable
class Outbox(Protocol):
    """Events committed with their changes, waiting to be published."""

    async def relay(self, publish: EventPublisher, limit: int = 500) -> int:
        """Publish the oldest waiting events in order and forget them; the number relayed.
        One relayer at a time; at least once (a crash after publishing repeats them)."""

    async def wait(self, timeout: float) -> None:
        """Return when events may be waiting (or after `timeout`)."""
