"""The latest top of book per symbol that this process has seen.

Fed by the feed's quotes (the `all` role: every symbol the executor follows) or by the
book channel (the `api` role: the symbols relayed to it). Read for a market buy's reserve
(its best ask) and for the unrealized P&L of a position. Keeping the update itself costs
one dict write per quote: the Quote is made only when read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from app.core.domain import BookUpdate
from app.core.positions import Quote


class LatestQuotes:
    def __init__(self) -> None:
        self._latest: dict[str, BookUpdate] = {}

    def on_update(self, update: BookUpdate) -> None:
        self._latest[update.symbol] = update

    def forget(self, symbols: Iterable[str]) -> None:
        """The stream of these symbols was lost: what was known of them is stale."""
        for symbol in symbols:
            self._latest.pop(symbol, None)

    def quote(self, symbol: str) -> Quote | None:
        update = self._latest.get(symbol)
        return None if update is None else Quote.of(update)

    def best_ask(self, symbol: str) -> Decimal | None:
        update = self._latest.get(symbol)
        return update.asks[0][0] if update is not None and update.asks else None

    def best_bid(self, symbol: str) -> Decimal | None:
        update = self._latest.get(symbol)
        return update.bids[0][0] if update is not None and update.bids else None

    def quotes(self, symbols: Iterable[str]) -> Mapping[str, Quote]:
        """The known quotes of these symbols (unknown ones left out)."""
        found = {symbol: self.quote(symbol) for symbol in symbols}
        return {symbol: quote for symbol, quote in found.items() if quote is not None}
