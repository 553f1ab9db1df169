"""The fee of one fill: a buy pays in the base asset it receives, a sell in the quote asset.

Exactness: a price and a quantity are < 10^20 with at most 18 fractional digits, so each
coefficient has at most 38 digits; a fee rate accepted by `check_fee_rate` (0 <= rate < 1,
at most 18 fractional digits) has at most 18. `qty × price × rate` therefore has at most
38 + 38 + 18 = 94 digits, inside EXACT's 100, which traps `Inexact` besides: no fee is
ever rounded (tests/test_account.py multiplies the largest operands to show it).
"""

from __future__ import annotations

import enum
from decimal import Decimal

from app.core.decimals import EXACT, ZERO
from app.core.domain import Side

MAX_RATE_PLACES = 18
DEFAULT_FEE_RATE = Decimal("0.001")  # FEE_RATE's default (CONTRACT.md)


class FeeAsset(enum.StrEnum):
    """Which asset of the symbol a fee is paid in."""

    BASE = "base"
    QUOTE = "quote"


def fee_asset_kind(side: Side) -> FeeAsset:
    """A buy pays its fee in the base asset it receives, a sell in the quote asset."""
    return FeeAsset.BASE if side is Side.BUY else FeeAsset.QUOTE


def fee_for(side: Side, price: Decimal, qty: Decimal, rate: Decimal) -> tuple[Decimal, FeeAsset]:
    """The fee of a fill of `qty` at `price`: `qty × rate` (buy) or `qty × price × rate`
    (sell), exact, and the asset kind it is paid in."""
    if side is Side.BUY:
        return EXACT.multiply(qty, rate), FeeAsset.BASE
    return EXACT.multiply(EXACT.multiply(qty, price), rate), FeeAsset.QUOTE


def fee_in_quote(side: Side, price: Decimal, fee: Decimal) -> Decimal:
    """A fill's fee valued in the quote asset: a buy's base-asset fee at its fill price."""
    return EXACT.multiply(fee, price) if side is Side.BUY else fee


def check_fee_rate(rate: Decimal) -> Decimal:
    """`rate`, normalized, if it keeps every fee exact (finite, 0 <= rate < 1, at most 18
    fractional digits), else ValueError saying why; for validating the FEE_RATE setting."""
    if not rate.is_finite():
        raise ValueError("must be a finite decimal such as 0.001")
    if rate < ZERO or rate >= 1:
        raise ValueError("must be at least 0 and less than 1 (a fraction of the fill's value)")
    rate = rate.normalize(EXACT)  # "0.00100" is 0.001, with no trailing digits to carry
    exponent = rate.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if -exponent > MAX_RATE_PLACES:
        raise ValueError(f"must have at most {MAX_RATE_PLACES} digits after the point")
    return rate
