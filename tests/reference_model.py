"""A deliberately naive model of CONTRACT.md's fill model, to check the engine against.

No buckets, no early exits, no sorted containers: every update re-sorts every order and
tries every level, so it is obviously the rules and nothing else. Slow on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.domain import BookUpdate

Fill = tuple[str, int, Decimal, Decimal]  # (order_id, update_id, price, qty)


@dataclass
class _Order:
    order_id: str
    side: str  # "buy" | "sell"
    limit: Decimal
    remaining: Decimal
    expires_at: float
    arrival: int


class ReferenceModel:
    def __init__(self) -> None:
        self.orders: dict[str, _Order] = {}
        self.taken: dict[str, dict[Decimal, Decimal]] = {"asks": {}, "bids": {}}
        self.last_id: int | None = None
        self.quote: BookUpdate | None = None
        self._arrivals = 0

    def add(
        self, order_id: str, side: str, limit: Decimal, size: Decimal, expires_at: float,
        now: float,
    ) -> list[Fill]:  # fmt: skip
        self._arrivals += 1
        order = _Order(order_id, side, limit, size, expires_at, self._arrivals)
        self.orders[order_id] = order
        if self.quote is None or expires_at <= now:
            return []
        book_side = "asks" if side == "buy" else "bids"
        levels = self.quote.asks if side == "buy" else self.quote.bids
        ledger = self.taken[book_side]
        offers = [qty - ledger.get(price, Decimal(0)) for price, qty in levels]
        return self._match([order], levels, offers, ledger, self.quote.update_id)

    def remove(self, order_id: str) -> None:
        self.orders.pop(order_id, None)

    def forget_quote(self) -> None:
        self.quote = None

    def apply(self, update: BookUpdate) -> list[Fill] | None:
        if self.last_id is not None and update.update_id <= self.last_id:
            return None
        self.last_id = update.update_id
        self.quote = update
        fills: list[Fill] = []
        for side, book_side, levels in (
            ("buy", "asks", update.asks),
            ("sell", "bids", update.bids),
        ):
            ledger = self.taken[book_side]
            if levels:
                best = levels[0][0]
                worst = levels[-1][0]
                shown = {price for price, _ in levels}
                for price in list(ledger):
                    through = price < best if book_side == "asks" else price > best
                    low, high = (best, worst) if book_side == "asks" else (worst, best)
                    vanished = update.full_depth and low <= price <= high and price not in shown
                    if through or vanished:
                        del ledger[price]
            offers = []
            for price, qty in levels:
                kept = min(ledger.get(price, Decimal(0)), qty)
                ledger[price] = kept
                offers.append(qty - kept)
            contenders = [
                o for o in self.orders.values()
                if o.side == side and o.expires_at > update.received_at
            ]  # fmt: skip
            if side == "buy":
                contenders.sort(key=lambda o: (-o.limit, o.arrival))
            else:
                contenders.sort(key=lambda o: (o.limit, o.arrival))
            fills += self._match(contenders, levels, offers, ledger, update.update_id)
        return fills

    def _match(
        self,
        orders: list[_Order],
        levels: tuple[tuple[Decimal, Decimal], ...],
        offers: list[Decimal],
        ledger: dict[Decimal, Decimal],
        update_id: int,
    ) -> list[Fill]:
        fills: list[Fill] = []
        for order in orders:
            for index, (price, _) in enumerate(levels):
                acceptable = price <= order.limit if order.side == "buy" else price >= order.limit
                if not acceptable or order.remaining == 0 or offers[index] == 0:
                    continue
                qty = min(offers[index], order.remaining)
                offers[index] -= qty
                order.remaining -= qty
                ledger[price] = ledger.get(price, Decimal(0)) + qty
                fills.append((order.order_id, update_id, price, qty))
            if order.remaining == 0:
                del self.orders[order.order_id]
        return fills
