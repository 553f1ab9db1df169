"""A symbol's base and quote assets, from its name alone (until exchange info says).

Binance symbols are the base asset followed by the quote asset, with no separator
(`BTCUSDT` = BTC priced in USDT). The quote is found as the longest known quote-asset
suffix that leaves a base behind; a symbol that ends in none of them is split before its
last three characters (most assets have three or more letters), and a symbol of three
characters or fewer is its own base with an empty quote.
"""

from __future__ import annotations

from functools import lru_cache

from app.core.domain import Side

# Binance's quote assets, longest first so that `FDUSD` wins over `USD`-like tails and
# `AEUR` over `EUR`.
_KNOWN_QUOTES = (
    "USDT FDUSD USDC TUSD BUSD USDP DAI PAX UST VAI BTC ETH BNB XRP TRX DOGE DOT "
    "EUR AEUR EURI TRY BRL JPY GBP AUD RUB UAH BIDR IDRT NGN ZAR PLN RON ARS MXN COP CZK BKRW"
)
QUOTE_ASSETS: tuple[str, ...] = tuple(
    sorted(set(_KNOWN_QUOTES.split()), key=lambda asset: (-len(asset), asset))
)


@lru_cache(maxsize=4096)
def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of an upper-case symbol, e.g. `BTCUSDT` -> (`BTC`, `USDT`)."""
    for quote in QUOTE_ASSETS:
        if len(symbol) > len(quote) and symbol.endswith(quote):
            return symbol[: -len(quote)], quote
    if len(symbol) > 3:
        return symbol[:-3], symbol[-3:]
    return symbol, ""


def fee_asset(symbol: str, side: Side) -> str:
    """The asset a fill's fee is paid in: a buy pays in the base asset it receives, a
    sell in the quote asset."""
    base, quote = split_symbol(symbol)
    return base if side is Side.BUY else quote
