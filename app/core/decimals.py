"""Exact decimal arithmetic for every quantity and price.

Prices and sizes are bounded to < 10^20 with at most 18 fractional digits, so a product
or a difference can need ~60 significant digits. The default context (28 digits) would
round silently; EXACT has room to spare and traps `Inexact`, so any rounding on a fill
path raises instead of corrupting a fill.
"""

from __future__ import annotations

from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
# For quotients shown to people (average price): rounded, never used to fill.
DISPLAY = Context(prec=28, traps=[InvalidOperation, Overflow, DivisionByZero])

ZERO = Decimal(0)


def fmt(value: Decimal) -> str:
    """Plain notation without exponent or trailing zeros: Decimal('1.5000') -> '1.5'."""
    return format(value.normalize(EXACT), "f")


def avg_price(notional: Decimal, filled: Decimal) -> Decimal | None:
    if not filled:
        return None
    return DISPLAY.divide(notional, filled).normalize(DISPLAY)
