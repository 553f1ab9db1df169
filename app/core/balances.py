"""One owner's paper balances, and what accepting, filling and ending an order does to them.

Each event yields its balance deltas (`deltas_on_accept`, `deltas_on_fill`, `deltas_on_fills`,
`deltas_on_end`) without touching any balance: the caller applies them (`Balances.apply`,
or its store's own rows) in the same transaction as the order or fill that causes them.

What an open order locks is a function of its state alone (`locked_by`):
- a sell (limit or market): its remaining size, in the base asset;
- a limit buy: remaining × limit, in the quote asset, so a fill at a better price frees the
  difference at once;
- a market buy: its *reserve* (size × best ask × 1.05, fixed when it is accepted: see
  `market_buy_reserve`) less what its fills have cost so far, never below 0. Each fill pays
  its cost out of that lock; if the fills cost more than the reserve (the book moved more
  than 5% before they happened), the excess is paid from free, which may then go below 0
  even when balances are enforced: a fill is never refused.
Whatever an order still locks when it ends (filled, cancelled, expired) is released.

A fill moves balances by what was paid and received: a buy pays price × qty of the quote
asset (from its lock) and receives qty less the fee of the base asset; a sell pays qty of
the base asset (from its lock) and receives price × qty less the fee of the quote asset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from app.core.assets import SymbolAssets
from app.core.decimals import EXACT, ZERO, fmt
from app.core.domain import Side
from app.core.rules import is_decimal_text

MARKET_BUY_RESERVE_FACTOR = Decimal("1.05")
_LIMIT = Decimal(10) ** 20  # amounts are < 10^20 with at most 18 fractional digits
_MAX_PLACES = 18
_ASSET = re.compile(r"[A-Za-z0-9]{1,20}")


class LockingOrder(Protocol):
    """What locking needs of an order (app.core.order.Order, plus `reserve`)."""

    @property
    def side(self) -> Side: ...
    @property
    def order_size(self) -> Decimal: ...
    @property
    def price(self) -> Decimal | None: ...  # the limit; None for a market order
    @property
    def filled_qty(self) -> Decimal: ...
    @property
    def notional(self) -> Decimal: ...  # sum of price × qty over its fills
    @property
    def reserve(self) -> Decimal | None: ...  # a market buy's quote locked at acceptance


class PricedFill(Protocol):
    @property
    def price(self) -> Decimal: ...
    @property
    def qty(self) -> Decimal: ...


class FeeFill(PricedFill, Protocol):
    @property
    def fee(self) -> Decimal: ...  # in the base asset for a buy, the quote asset for a sell


class BalanceRefused(Exception):
    """An order the balances refuse: 422 `insufficient_balance`."""


class InsufficientBalance(BalanceRefused):
    def __init__(self, asset: str, needed: Decimal, free: Decimal) -> None:
        self.asset = asset
        self.needed = needed
        self.free = free
        super().__init__(f"insufficient {asset} balance: needs {fmt(needed)}, {fmt(free)} free")


class NoAskForMarketBuy(BalanceRefused):
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        super().__init__(f"no ask is known for {symbol}: a market buy cannot be priced yet")


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    """Add `free` and `locked` to the owner's balance of `asset`."""

    asset: str
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Lock:
    asset: str
    amount: Decimal


@dataclass(slots=True)
class AssetBalance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


class Balances:
    """One owner's balances per asset. `enforced` (a PAPER_BALANCES spec was given): an
    order is refused unless what it locks is free; otherwise nothing is refused and free
    may go below 0."""

    __slots__ = ("_rows", "enforced")

    def __init__(self, rows: Mapping[str, AssetBalance] | None = None, *, enforced: bool):
        self.enforced = enforced
        self._rows = {
            asset: AssetBalance(row.free, row.locked) for asset, row in (rows or {}).items()
        }

    @classmethod
    def opening(cls, spec: Mapping[str, Decimal] | None) -> Balances:
        """What an owner has when first seen: the spec's amounts, free; enforced iff a spec
        was given (`parse_paper_balances` gives None for an empty PAPER_BALANCES)."""
        if spec is None:
            return cls(enforced=False)
        return cls({asset: AssetBalance(amount) for asset, amount in spec.items()}, enforced=True)

    def of(self, asset: str) -> AssetBalance:
        """A copy of the balance of `asset` (zero if the owner never had any)."""
        row = self._rows.get(asset)
        return AssetBalance() if row is None else AssetBalance(row.free, row.locked)

    def rows(self) -> dict[str, AssetBalance]:
        """Every asset's balance (copies), by asset name."""
        return {asset: self.of(asset) for asset in sorted(self._rows)}

    def check(self, deltas: Iterable[BalanceDelta]) -> None:
        """InsufficientBalance if enforced and a delta takes more from free than is free."""
        if not self.enforced:
            return
        for delta in deltas:
            if delta.free < ZERO:
                free = self.of(delta.asset).free
                if EXACT.add(free, delta.free) < ZERO:
                    raise InsufficientBalance(delta.asset, -delta.free, free)

    def apply(self, deltas: Iterable[BalanceDelta]) -> None:
        """Add the deltas; never refuses (a fill cannot be): `check` first on acceptance."""
        for delta in deltas:
            row = self._rows.setdefault(delta.asset, AssetBalance())
            row.free = EXACT.add(row.free, delta.free)
            row.locked = EXACT.add(row.locked, delta.locked)


def parse_paper_balances(text: str) -> dict[str, Decimal] | None:
    """PAPER_BALANCES: `ASSET:amount,...` (e.g. "USDT:10000,BTC:0.5") as {asset: amount},
    asset names upper case; None when empty (balances not enforced). ValueError naming the
    bad entry otherwise."""
    if not text.strip():
        return None
    spec: dict[str, Decimal] = {}
    for number, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        where = f'entry {number} "{entry}"'
        asset, colon, amount = entry.partition(":")
        asset, amount = asset.strip(), amount.strip()
        if not colon:
            raise ValueError(f"{where}: expected ASSET:amount, e.g. USDT:10000")
        if _ASSET.fullmatch(asset) is None:
            raise ValueError(f"{where}: the asset must be 1-20 letters or digits (A-Z, 0-9)")
        if not is_decimal_text(amount):
            raise ValueError(f'{where}: the amount must be a decimal number such as "0.5"')
        value = Decimal(amount)
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # digits and a point only: finite
        if value >= _LIMIT or -exponent > _MAX_PLACES:
            raise ValueError(
                f"{where}: the amount must be less than 10^20, "
                f"with at most {_MAX_PLACES} digits after the point"
            )
        name = asset.upper()
        if name in spec:
            raise ValueError(f"{where}: {name} is given twice")
        spec[name] = value
    return spec


def market_buy_reserve(
    symbol: str, order_size: Decimal, best_ask: Decimal | None, *, enforced: bool
) -> Decimal:
    """What a market buy locks when accepted: size × best ask × 1.05 of the quote asset.
    With no known ask it is refused (NoAskForMarketBuy) when balances are enforced, else it
    locks nothing and its fills are paid from free."""
    if best_ask is None:
        if enforced:
            raise NoAskForMarketBuy(symbol)
        return ZERO
    return EXACT.multiply(EXACT.multiply(order_size, best_ask), MARKET_BUY_RESERVE_FACTOR)


def locked_by(order: LockingOrder, assets: SymbolAssets) -> Lock:
    """What `order` locks as it stands (whatever its status: the caller releases it when
    the order ends)."""
    asset = assets.base if order.side is Side.SELL else assets.quote
    return Lock(asset, _locked_amount(order, order.filled_qty, order.notional))


def deltas_on_accept(order: LockingOrder, assets: SymbolAssets) -> list[BalanceDelta]:
    """Free → locked for a newly accepted order (a market buy's `reserve` set first).
    `Balances.check` these to refuse an order whose lock is not free."""
    lock = locked_by(order, assets)
    return merged([BalanceDelta(lock.asset, -lock.amount, lock.amount)])


def deltas_on_fill(
    order_before: LockingOrder, fill: PricedFill, fee: Decimal, assets: SymbolAssets
) -> list[BalanceDelta]:
    """One fill of `order_before` (its state before the fill was recorded)."""
    return _fill_deltas(
        order_before, assets, order_before.filled_qty, order_before.notional,
        [(fill.price, fill.qty, fee)],
    )  # fmt: skip


def deltas_on_fills(
    order_after: LockingOrder, fills: Sequence[FeeFill], assets: SymbolAssets
) -> list[BalanceDelta]:
    """The fills just recorded on `order_after` (its state with them: e.g. one update's
    batch), in the order they happened, merged into one delta per asset."""
    filled, notional = order_after.filled_qty, order_after.notional
    for fill in fills:
        filled = EXACT.subtract(filled, fill.qty)
        notional = EXACT.subtract(notional, EXACT.multiply(fill.price, fill.qty))
    return _fill_deltas(
        order_after, assets, filled, notional, [(f.price, f.qty, f.fee) for f in fills]
    )


def deltas_on_end(order: LockingOrder, assets: SymbolAssets) -> list[BalanceDelta]:
    """Locked → free: whatever the order still locks, released as it ends. Call it once,
    when the order's status becomes final."""
    lock = locked_by(order, assets)
    return merged([BalanceDelta(lock.asset, lock.amount, -lock.amount)])


def _locked_amount(order: LockingOrder, filled: Decimal, notional: Decimal) -> Decimal:
    """What `order` locks once `filled` of it has cost `notional`."""
    if order.side is Side.SELL:
        return EXACT.subtract(order.order_size, filled)
    if order.price is not None:
        return EXACT.multiply(EXACT.subtract(order.order_size, filled), order.price)
    if order.reserve is None:
        raise ValueError("a market buy locks its reserve: set it (market_buy_reserve) first")
    return max(ZERO, EXACT.subtract(order.reserve, notional))


def _fill_deltas(
    order: LockingOrder,
    assets: SymbolAssets,
    filled: Decimal,
    notional: Decimal,
    fills: Iterable[tuple[Decimal, Decimal, Decimal]],
) -> list[BalanceDelta]:
    """Per fill: the lock asset's lock falls by what the fill releases, which pays for the
    fill (a buy: its cost, a sell: its qty) with any difference going to (or, for a market
    buy past its reserve, coming from) free; the other asset receives the proceeds less the
    fee."""
    buy = order.side is Side.BUY
    released_total = paid_total = received_total = ZERO
    locked = _locked_amount(order, filled, notional)
    for price, qty, fee in fills:
        if qty <= ZERO or fee < ZERO:
            raise ValueError(f"a fill needs qty > 0 and fee >= 0, not {qty} and {fee}")
        cost = EXACT.multiply(price, qty)
        filled = EXACT.add(filled, qty)
        notional = EXACT.add(notional, cost)
        if filled > order.order_size:
            raise ValueError(f"a fill of {qty} over-fills an order of {order.order_size}")
        locked_after = _locked_amount(order, filled, notional)
        released_total = EXACT.add(released_total, EXACT.subtract(locked, locked_after))
        locked = locked_after
        paid_total = EXACT.add(paid_total, cost if buy else qty)
        received_total = EXACT.add(received_total, EXACT.subtract(qty if buy else cost, fee))
    lock_asset, receive_asset = (assets.quote, assets.base) if buy else (assets.base, assets.quote)
    deltas = [
        BalanceDelta(lock_asset, EXACT.subtract(released_total, paid_total), -released_total),
        BalanceDelta(receive_asset, received_total),
    ]  # two assets (a symbol's base and quote differ): nothing to merge
    return sorted((d for d in deltas if d.free or d.locked), key=_asset_of)


def _asset_of(delta: BalanceDelta) -> str:
    return delta.asset


def merged(deltas: Iterable[BalanceDelta]) -> list[BalanceDelta]:
    """One delta per asset, zero ones left out, by asset name (a store that locks rows in
    this order cannot deadlock with another doing the same)."""
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for delta in deltas:
        free, locked = totals.get(delta.asset, (ZERO, ZERO))
        totals[delta.asset] = (EXACT.add(free, delta.free), EXACT.add(locked, delta.locked))
    return [
        BalanceDelta(asset, free, locked)
        for asset, (free, locked) in sorted(totals.items())
        if free or locked
    ]
