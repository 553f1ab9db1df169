"""The asset an order's fees are paid in, from its symbol and side, and exact fees."""

from __future__ import annotations

from decimal import Context, Decimal, localcontext

import pytest

from app.core.domain import Side
from app.core.fees import fee_for
from app.core.symbols import fee_asset, symbol_assets

D = Decimal


@pytest.mark.parametrize(
    ("symbol", "base", "quote"),
    [
        ("BTCUSDT", "BTC", "USDT"), ("LTCBTC", "LTC", "BTC"), ("ETHFDUSD", "ETH", "FDUSD"),
        ("BTCTUSD", "BTC", "TUSD"), ("USDCUSDT", "USDC", "USDT"), ("BNBETH", "BNB", "ETH"),
        ("BTCAEUR", "BTC", "AEUR"), ("SHIBTRY", "SHIB", "TRY"), ("PEPEJPY", "PEPE", "JPY"),
        # Unknown quote: split before the last three characters; too short: no quote.
        ("FOOXYZ", "FOO", "XYZ"), ("AB", "AB", ""),
        # A symbol that is only a quote asset is not split into an empty base.
        ("USDTBTC", "USDT", "BTC"),
    ],
)  # fmt: skip
def test_a_symbol_splits_into_base_and_quote(symbol: str, base: str, quote: str) -> None:
    assets = symbol_assets(symbol)
    assert (assets.base, assets.quote) == (base, quote)


def test_a_buy_pays_in_the_base_asset_and_a_sell_in_the_quote() -> None:
    assert fee_asset("BTCUSDT", Side.BUY) == "BTC"
    assert fee_asset("BTCUSDT", Side.SELL) == "USDT"


def test_fees_are_exact() -> None:
    rate = D("0.001")
    assert fee_for(Side.BUY, D("61850.5"), D("0.00245"), rate)[0] == D("0.00000245")
    assert fee_for(Side.SELL, D("61850.5"), D("0.00245"), rate)[0] == D("0.151533725")
    top = D("99999999999999999999.999999999999999999")
    fee, _ = fee_for(Side.SELL, top, top, D("0.000000000000000001"))  # 94 significant digits
    with localcontext(Context(prec=200)):
        assert fee.scaleb(18) == top * top
    assert fee_for(Side.BUY, D("1"), D("5"), D(0))[0] == 0
