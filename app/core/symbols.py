"""A symbol's base and quote assets from its name alone, for an order's fee asset.

Exchange info is the authority (`SymbolAssets` from its baseAsset/quoteAsset, wired in
later); until it answers, `app.core.assets.guess_assets` splits at the longest known
quote-asset suffix. A symbol that ends in none of them is split before its last three
characters (most assets have three or more letters), and a symbol of three characters or
fewer is its own base with an empty quote.
"""

from __future__ import annotations

from functools import lru_cache

from app.core.assets import SymbolAssets, guess_assets
from app.core.domain import Side


@lru_cache(maxsize=4096)
def symbol_assets(symbol: str) -> SymbolAssets:
    """The (base, quote) of an upper-case symbol, e.g. `BTCUSDT` -> BTC, USDT."""
    guessed = guess_assets(symbol)
    if guessed is not None:
        return guessed
    if len(symbol) > 3:
        return SymbolAssets(symbol[:-3], symbol[-3:])
    return SymbolAssets(symbol, "")


def fee_asset(symbol: str, side: Side) -> str:
    """The asset a fill's fee is paid in: a buy pays in the base asset it receives, a
    sell in the quote asset."""
    return symbol_assets(symbol).fee_asset(side)
