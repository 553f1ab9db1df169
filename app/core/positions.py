"""An owner's position in one symbol, folded over its fills one at a time (average cost).

`qty` is the base asset bought minus sold (fill quantities, fees not subtracted). A fill in
the position's direction moves the average entry price to the size-weighted mean of the old
average and the fill's price; a fill against it closes at the average (realizing
(exit - average) × qty, fees excluded) and, if it goes through zero, opens the rest at the
fill's price. `fees` is every fee valued in the quote asset (a buy's base-asset fee at its
fill price).

The state is exact. The average is a `Fraction` (1 @ 1 then 2 @ 2 averages 5/3); the other
fields are exact decimals, and the realized P&L is derived rather than accumulated:
`cash + average × qty`, where `cash` is what sells received minus what buys paid. That
identity holds after every fill (an opening fill moves cash and cost basis by the same
amount; a closing one moves cash by exit × qty and cost basis by average × qty), so nothing
accumulates a rounding, and a flat position's realized P&L is `cash`: exact, always.
Values are rounded only when shown (`show`): half-even to 18 places when they do not
terminate.

One bound keeps a fill O(1): the exact average's denominator grows with every addition
that follows a partial close (the exact value needs it: ~800 digits after 1,000 such fills,
without end). Past 10^100 it is rounded half-even to 100 decimal places, an error below
10^-100 per fill that no shown value (18 places) can see, and that vanishes when the
position is next flat or goes through zero; meanwhile `avg_rounded` says so and the average
and P&L are shown rounded to 18 places. Until then (every position of less than a few
hundred fills) the state is the exact rational.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from app.core.decimals import EXACT, ZERO, fmt
from app.core.domain import BookUpdate, Side
from app.core.fees import fee_in_quote

SHOWN_PLACES = 18
AVG_PLACES_KEPT = 100  # past 10^100, the average's denominator is rounded to 10^100
_AVG_DENOMINATOR_LIMIT = 10**AVG_PLACES_KEPT


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest top of book of a symbol, either side possibly unknown."""

    bid: Decimal | None
    ask: Decimal | None

    @classmethod
    def of(cls, update: BookUpdate) -> Quote:
        return cls(
            update.bids[0][0] if update.bids else None, update.asks[0][0] if update.asks else None
        )


@dataclass(frozen=True, slots=True)
class PositionRow:
    """A position's state as a store keeps it, exactly (one row per owner and symbol)."""

    qty: str
    avg_entry: str | None  # a Fraction as "numerator/denominator" (or an integer)
    avg_rounded: bool
    cash: str
    fees: str


@dataclass(slots=True)
class Position:
    symbol: str
    qty: Decimal = ZERO  # > 0 long, < 0 short
    avg_entry: Fraction | None = None  # None when flat
    # The average was bounded (see the module's docstring): the average, realized and
    # unrealized P&L are within 10^-90 of exact, and shown rounded to 18 places, until the
    # position is next flat or goes through zero (where the exact average is the price).
    avg_rounded: bool = False
    cash: Decimal = ZERO  # quote asset: sells' price × qty minus buys', fees excluded
    fees: Decimal = ZERO  # in the quote asset

    def apply_fill(self, side: Side, price: Decimal, qty: Decimal, fee: Decimal) -> None:
        """Fold one fill in (O(1)); fills must come in the order they were committed."""
        if qty <= ZERO or price <= ZERO:
            raise ValueError(f"a fill needs price > 0 and qty > 0, not {price} and {qty}")
        cost = EXACT.multiply(price, qty)
        buy = side is Side.BUY
        self.cash = EXACT.subtract(self.cash, cost) if buy else EXACT.add(self.cash, cost)
        self.fees = EXACT.add(self.fees, fee_in_quote(side, price, fee))
        held = abs(self.qty)
        new_qty = EXACT.add(self.qty, qty) if buy else EXACT.subtract(self.qty, qty)
        if self.avg_entry is None or (self.qty > ZERO) == buy:  # opens or adds
            old_cost = self.avg_entry * Fraction(held) if self.avg_entry is not None else 0
            avg = (old_cost + Fraction(cost)) / Fraction(EXACT.add(held, qty))
            if avg.denominator > _AVG_DENOMINATOR_LIMIT:
                avg = round(avg, AVG_PLACES_KEPT)
                self.avg_rounded = True
            self.avg_entry = avg
        elif not new_qty:  # closes exactly
            self.avg_entry = None
            self.avg_rounded = False
        elif (new_qty > ZERO) != (self.qty > ZERO):  # through zero: the rest opens here
            self.avg_entry = Fraction(price)
            self.avg_rounded = False
        # else it reduces the position, at the average, which stays
        self.qty = new_qty

    @property
    def realized_pnl(self) -> Fraction:
        if self.avg_entry is None:
            return Fraction(self.cash)
        return Fraction(self.cash) + self.avg_entry * Fraction(self.qty)

    def unrealized_pnl(self, quote: Quote | None) -> Fraction | None:
        """Against the bid (long) or the ask (short); 0 when flat, None with no such price."""
        if self.avg_entry is None:
            return Fraction(0)
        mark = None if quote is None else quote.bid if self.qty > ZERO else quote.ask
        if mark is None:
            return None
        return (Fraction(mark) - self.avg_entry) * Fraction(self.qty)

    def view(self, quote: Quote | None) -> dict[str, str | None]:
        """The position as GET /account shows it."""
        unrealized = self.unrealized_pnl(quote)
        rounded = self.avg_rounded
        return {
            "symbol": self.symbol,
            "qty": show(self.qty),
            "avg_entry_price": (
                None if self.avg_entry is None else show(self.avg_entry, rounded=rounded)
            ),
            "realized_pnl": show(self.realized_pnl, rounded=rounded),
            "unrealized_pnl": None if unrealized is None else show(unrealized, rounded=rounded),
            "fees": show(self.fees),
        }

    def to_row(self) -> PositionRow:
        return PositionRow(
            str(self.qty), None if self.avg_entry is None else str(self.avg_entry),
            self.avg_rounded, str(self.cash), str(self.fees),
        )  # fmt: skip

    @classmethod
    def from_row(cls, symbol: str, row: PositionRow) -> Position:
        avg = None if row.avg_entry is None else Fraction(row.avg_entry)
        return cls(
            symbol, Decimal(row.qty), avg, row.avg_rounded, Decimal(row.cash), Decimal(row.fees)
        )


def show(value: Decimal | Fraction, *, rounded: bool = False) -> str:
    """Exact plain notation when the value terminates, else (or when it stands for one that
    may not: `rounded`) rounded half-even to 18 places."""
    if isinstance(value, Decimal):
        return fmt(EXACT.add(value, ZERO))  # + 0: "-0" shows as "0"
    places = _places_to_terminate(value.denominator)
    if places is None or rounded:
        value = round(value, SHOWN_PLACES)  # a Fraction, rounded half-even: it terminates
        places = _places_to_terminate(value.denominator)
        assert places is not None
    units = value.numerator * (10**places // value.denominator)
    while places and units % 10 == 0:
        units //= 10
        places -= 1
    digits = str(abs(units)).rjust(places + 1, "0")
    sign = "-" if units < 0 else ""
    return sign + (f"{digits[:-places]}.{digits[-places:]}" if places else digits)


def _places_to_terminate(denominator: int) -> int | None:
    """The k with denominator | 10^k, or None when 1/denominator does not terminate."""
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    return max(twos, fives) if denominator == 1 else None
