"""The two assets of a symbol: LTCBTC trades LTC (base) against BTC (quote)."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.domain import Side


@dataclass(frozen=True, slots=True)
class SymbolAssets:
    base: str  # what order_size counts
    quote: str  # what price is counted in

    def fee_asset(self, side: Side) -> str:
        """The asset a fill's fee is paid in: the one the order receives."""
        return self.base if side is Side.BUY else self.quote


# Quote assets Binance lists, longest first so that "FDUSD" wins over "USD"-like tails.
KNOWN_QUOTES = tuple(
    sorted(
        (
            "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "DAI", "BTC", "ETH", "BNB", "EUR",
            "TRY", "BRL", "JPY", "GBP", "AUD", "ARS", "MXN", "PLN", "RON", "UAH", "ZAR",
            "IDR", "COP", "CZK", "XRP", "TRX", "DOGE", "DOT", "SOL", "USDP", "AEUR",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip


def guess_assets(symbol: str) -> SymbolAssets | None:
    """A best guess from the symbol's spelling, for when exchange info is not available
    (it is the authority: use its `baseAsset` and `quoteAsset` when it answers); None when
    no known quote asset ends the symbol."""
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return SymbolAssets(symbol[: -len(quote)], quote)
    return None
