"""The fee of one fill (CONTRACT.md, "Fees"): exact, in the asset the fill pays it in."""

from __future__ import annotations

from decimal import Decimal

from app.core.decimals import EXACT
from app.core.domain import Side

DEFAULT_FEE_RATE = Decimal("0.001")  # FEE_RATE's default (CONTRACT.md)


def fee_for(side: Side, price: Decimal, qty: Decimal, rate: Decimal) -> Decimal:
    """`qty × rate` in the base asset for a buy, `qty × price × rate` in the quote asset
    for a sell; exact (EXACT traps any rounding)."""
    if side is Side.BUY:
        return EXACT.multiply(qty, rate)
    return EXACT.multiply(EXACT.multiply(qty, price), rate)
