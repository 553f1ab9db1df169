"""An order and its fills as the service holds and stores them."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NoReturn, SupportsIndex

from app.core.decimals import EXACT, ZERO
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce

# Values that many resting orders hold alike (a price level, a usual size or timeout) are
# kept once: each Decimal is ~100 bytes. Bounded: past this many, start afresh.
MAX_SHARED = 65_536
_decimals: dict[Decimal, Decimal] = {}
_floats: dict[float, float] = {}  # apart: 1.0 and Decimal(1) are equal dict keys


def shared_decimal(value: Decimal) -> Decimal:
    """An equal Decimal that other orders may hold too (fmt() shows both alike)."""
    kept = _decimals.get(value)
    if kept is None:
        if len(_decimals) >= MAX_SHARED:
            _decimals.clear()
        kept = _decimals[value] = value
    return kept


def shared_float(value: float) -> float:
    kept = _floats.get(value)
    if kept is None:
        if len(_floats) >= MAX_SHARED:
            _floats.clear()
        kept = _floats[value] = value
    return kept


class _NoFills(list):  # type: ignore[type-arg]
    """The one empty, unchangeable fills list of every order whose fills are not loaded
    (an empty list per order would cost ~72 bytes each, resting by the hundred thousand)."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("an order's unloaded fills cannot change: assign a new list")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = _refuse

    def __iadd__(self, other: object) -> NoReturn:  # type: ignore[override, misc]
        self._refuse()

    def __imul__(self, other: SupportsIndex) -> NoReturn:  # type: ignore[override, misc]
        self._refuse()


NO_FILLS: list[Fill] = _NoFills()


def _no_fills() -> list[Fill]:
    return NO_FILLS


@dataclass(slots=True)
class Fill:
    seq: int  # counts an order's fills from 1
    update_id: int
    price: Decimal
    qty: Decimal
    ts_us: int
    fee: Decimal = ZERO  # in fee_asset: qty x rate (buy) or qty x price x rate (sell)
    fee_asset: str = ""


@dataclass(slots=True)
class Order:
    order_id: str
    owner: str
    client_order_id: str | None
    symbol: str
    side: Side
    order_size: Decimal
    price: Decimal | None  # None: a market order (no limit)
    timeout_s: float
    status: OrderStatus
    created_at_us: int
    updated_at_us: int
    expires_at_us: int
    filled_qty: Decimal = ZERO
    notional: Decimal = ZERO  # sum of price * qty over the fills, for the average price
    fill_count: int = 0
    reason: str | None = None
    fills: list[Fill] = field(default_factory=_no_fills)  # loaded only where needed
    type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTT
    fees: Decimal = ZERO  # the sum of the fills' fees, in fee_asset
    fee_asset: str = ""  # set at intake: the base asset for a buy, the quote for a sell
    # A market buy's quote asset locked at acceptance (size × best ask × 1.05: see
    # app.core.balances.market_buy_reserve); None for every other order.
    reserve: Decimal | None = None

    def snapshot(self) -> Order:
        """A copy of the order as it is now, without its fills (for an event).

        Built positionally: `dataclasses.replace` costs about eight times as much, once per
        accepted order and per fill."""
        return Order(
            self.order_id, self.owner, self.client_order_id, self.symbol, self.side,
            self.order_size, self.price, self.timeout_s, self.status, self.created_at_us,
            self.updated_at_us, self.expires_at_us, self.filled_qty, self.notional,
            self.fill_count, self.reason, NO_FILLS, self.type, self.time_in_force, self.fees,
            self.fee_asset, self.reserve,
        )  # fmt: skip

    def share_common_values(self) -> None:
        """Hold the values many resting orders have alike as one object each (price,
        size, timeout, symbol, owner): done as an order starts resting."""
        self.order_size = shared_decimal(self.order_size)
        if self.price is not None:
            self.price = shared_decimal(self.price)
        self.timeout_s = shared_float(self.timeout_s)
        self.symbol = sys.intern(self.symbol)
        self.owner = sys.intern(self.owner)
        self.fee_asset = sys.intern(self.fee_asset)

    @property
    def remaining_qty(self) -> Decimal:
        if not self.filled_qty:
            return self.order_size  # the same object: nothing new to hold while resting
        return EXACT.subtract(self.order_size, self.filled_qty)

    def record_fill(
        self, update_id: int, price: Decimal, qty: Decimal, ts_us: int, fee: Decimal = ZERO
    ) -> Fill:
        """Account one execution and its fee; the caller persists the returned fill with
        the order."""
        self.fill_count += 1
        if fee:
            self.fees = EXACT.add(self.fees, fee)
        self.filled_qty = EXACT.add(self.filled_qty, qty)
        self.notional = EXACT.add(self.notional, EXACT.multiply(price, qty))
        self.updated_at_us = ts_us
        self.status = (
            OrderStatus.FILLED
            if self.filled_qty == self.order_size
            else OrderStatus.PARTIALLY_FILLED
        )
        if self.filled_qty > self.order_size:
            raise AssertionError(f"order {self.order_id} over-filled")
        return Fill(self.fill_count, update_id, price, qty, ts_us, fee, self.fee_asset)

    def finish(self, status: OrderStatus, reason: str | None, ts_us: int) -> None:
        self.status = status
        self.reason = reason
        self.updated_at_us = ts_us
