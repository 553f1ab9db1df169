"""Display rounding for people: prices to the symbol's tick, quantities to its step.

The API stays exact (an average price may carry 28 digits); only the terminal rounds.
The tick and step come from the service's `GET /symbols/{symbol}` (Binance's PRICE_FILTER
and LOT_SIZE, as the service read them). When the service has no such endpoint, or does
not know the symbol, a number is shown with at most `SIGNIFICANT` significant digits and
never fewer decimals than the order's own text shows (its limit price, its size, its fill
prices), trailing zeros dropped beyond that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from app.terminal.api import Api, ApiError

SIGNIFICANT = 8
Number = str | Decimal | None


def decimal_places(text: str | None) -> int:
    """Digits after the point as written: "10.50" -> 2, "3" -> 0."""
    if not text or "." not in text:
        return 0
    return len(text.split(".", 1)[1])


def _as_decimal(value: str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def to_increment(value: Decimal, increment: Decimal) -> str:
    """`value` rounded half-even to a multiple of `increment`, with the increment's decimals."""
    increment = increment.normalize()
    exponent = increment.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    with localcontext() as context:
        context.prec = 80  # values < 10^20, increments >= 10^-18: always exact
        units = (value / increment).to_integral_value(ROUND_HALF_EVEN)
        return format((units * increment).quantize(Decimal(1).scaleb(-places)), "f")


def approximate(value: Decimal, like: Iterable[str | None] = ()) -> str:
    """At most SIGNIFICANT significant digits, never fewer decimals than `like` show."""
    floor = max((decimal_places(text) for text in like), default=0)
    if not value:
        return "0"
    places = max(floor, SIGNIFICANT - 1 - value.adjusted(), 0)
    with localcontext() as context:
        context.prec = 80
        text = format(value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN), "f")
    if "." in text:  # drop the zeros the rounding added, down to `floor` decimals
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0").ljust(floor, "0")
        text = f"{whole}.{fraction}" if fraction else whole
    return text


@dataclass(frozen=True, slots=True)
class Precision:
    """A symbol's tick (price increment) and step (quantity increment); None: not known."""

    tick: Decimal | None = None
    step: Decimal | None = None

    def price(self, value: Number, like: Iterable[str | None] = ()) -> str:
        if value is None:
            return "-"
        number = _as_decimal(value)
        return to_increment(number, self.tick) if self.tick else approximate(number, like)

    def qty(self, value: Number, like: Iterable[str | None] = ()) -> str:
        if value is None:
            return "-"
        number = _as_decimal(value)
        return to_increment(number, self.step) if self.step else approximate(number, like)


def amount(value: Number) -> str:
    """A balance, fee or P&L (its asset's precision is not known): significant digits."""
    return "-" if value is None else approximate(_as_decimal(value))


def _positive(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number > 0 else None


def _increment(payload: Mapping[str, Any], keys: tuple[str, ...], filter_type: str) -> Any:
    """The increment under one of `keys`, at the top, in a nested object, or in Binance's
    `filters` list (the entry of `filterType` == filter_type)."""
    places: list[Mapping[str, Any]] = [payload]
    places += [value for value in payload.values() if isinstance(value, Mapping)]
    filters = payload.get("filters")
    if isinstance(filters, list):
        places += [
            f for f in filters if isinstance(f, Mapping) and f.get("filterType") == filter_type
        ]
    for place in places:
        for key in keys:
            if place.get(key) is not None:
                return place[key]
    return None


def precision_from(payload: Any) -> Precision:
    """Read tick and step from a `GET /symbols/{symbol}` answer, whichever of the usual
    spellings it uses (tick_size/tickSize, step_size/stepSize, or Binance's filters)."""
    if not isinstance(payload, Mapping):
        return Precision()
    tick = _increment(payload, ("tick_size", "tickSize", "tick"), "PRICE_FILTER")
    step = _increment(payload, ("step_size", "stepSize", "step"), "LOT_SIZE")
    return Precision(_positive(tick), _positive(step))


UNKNOWN = Precision()  # neither tick nor step: approximate


class Precisions:
    """Each symbol's precision, asked of the service once per command."""

    def __init__(self, api: Api) -> None:
        self._api = api
        self._known: dict[str, Precision] = {}

    async def of(self, symbol: str) -> Precision:
        symbol = symbol.upper()
        if symbol not in self._known:
            try:
                payload = await self._api.get(f"/symbols/{symbol}")
            except ApiError:  # no such endpoint, or the symbol is not known: approximate
                payload = None
            self._known[symbol] = precision_from(payload)
        return self._known[symbol]
