"""A deliberately naive model of the fill model, to check the matching engine against.

No buckets, no early exits, no sorted containers, no caches: every update rebuilds the
ledger from the rules, re-sorts every resting order and offers every order every level.
Slow on purpose, so that it reads as the rules and nothing else:

1. an update whose id is not greater than the last applied one is skipped;
2. a buy takes asks priced <= its limit, a sell bids priced >= its limit, at the level price;
3. a per-book-side ledger (price -> quantity already taken) is reconciled with each update:
   traded-through prices are forgotten, a shown level S offers S - min(taken, S) and its
   entry becomes min(taken, S) before new fills are added;
4. price priority, then time priority (order of `add` calls); best level first;
5. an order added while a quote is known is matched against what is left of that quote;
6. exact decimal arithmetic;
7. only updates received before expires_at may fill an order;
8. time in force: an IOC or FOK order meets one quote, the one known when it is added or
   else the first update applied after it (taking its turn by priority there); an IOC
   takes what it can, a FOK takes its whole size or nothing (after the orders ahead of
   it), and then it leaves, ended if anything is left. A market order is an IOC whose limit
   accepts every level (buy: +Infinity, sell: 0).

API: `add(...)`, `apply(update)`, `remove(order_id)`, `forget_quote()`, `drain_ended()`;
executions come back as `(order_id, update_id, price, qty)` tuples, `apply` returns None for
a stale update; `drain_ended()` lists the IOC/FOK orders that ended unfilled since.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext

from app.core.domain import BookUpdate

Fill = tuple[str, int, Decimal, Decimal]  # (order_id, update_id, price, qty)
Levels = tuple[tuple[Decimal, Decimal], ...]

# Our own exact context (not the engine's): any rounding raises instead of hiding.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])
_ZERO = Decimal(0)


@dataclass
class RefOrder:
    order_id: str
    side: str  # "buy" | "sell"
    limit: Decimal
    remaining: Decimal
    expires_at: float
    arrival: int  # time priority: the n-th add call
    tif: str = "GTT"


class ReferenceModel:
    def __init__(self) -> None:
        self.orders: dict[str, RefOrder] = {}  # resting orders
        self.taken: dict[str, dict[Decimal, Decimal]] = {"asks": {}, "bids": {}}
        self.last_update_id: int | None = None
        self.quote: BookUpdate | None = None
        self.ended: list[str] = []
        self._arrivals = 0

    # -- events ----------------------------------------------------------------------

    def add(
        self,
        order_id: str,
        side: str,
        limit: Decimal | str,
        size: Decimal | str,
        expires_at: float,
        now: float,
        tif: str = "GTT",
    ) -> list[Fill]:
        side = str(side)
        assert side in ("buy", "sell"), side
        assert tif in ("GTT", "IOC", "FOK"), tif
        assert order_id not in self.orders, order_id
        self._arrivals += 1
        order = RefOrder(
            order_id, side, Decimal(limit), Decimal(size), expires_at, self._arrivals, tif
        )
        assert order.remaining > 0
        self.orders[order_id] = order
        quote = self.quote
        if quote is None:
            return []  # an IOC/FOK waits for the next quote
        fills: list[Fill] = []
        if now < expires_at and quote.received_at < expires_at:  # rule 7
            with localcontext(_EXACT):
                book_side = _book_side(side)
                levels = _levels(quote, book_side)
                # The quote was reconciled when applied; reconciling again is a no-op that
                # yields what its levels still offer after everything already taken from them.
                offers = self._reconcile(book_side, levels, quote.full_depth)
                if tif != "FOK" or self._available(order, levels, offers) >= order.remaining:
                    fills = self._fill(order, levels, offers, book_side, quote.update_id)
        if tif != "GTT":
            self._end(order)  # it met its quote
        return fills

    def apply(self, update: BookUpdate) -> list[Fill] | None:
        if self.last_update_id is not None and update.update_id <= self.last_update_id:
            return None
        self.last_update_id = update.update_id
        self.quote = update
        fills: list[Fill] = []
        with localcontext(_EXACT):
            for side in ("buy", "sell"):
                book_side = _book_side(side)
                levels = _levels(update, book_side)
                offers = self._reconcile(book_side, levels, update.full_depth)
                for order in self._by_priority(side):
                    if update.received_at >= order.expires_at:
                        continue
                    available = self._available(order, levels, offers)
                    if order.tif == "FOK" and available < order.remaining:
                        continue  # all or nothing, after the orders ahead of it
                    fills += self._fill(order, levels, offers, book_side, update.update_id)
        for order in list(self.orders.values()):
            if order.tif != "GTT":
                self._end(order)  # every IOC/FOK still here was waiting for this quote
        return fills

    def drain_ended(self) -> list[str]:
        ended, self.ended = self.ended, []
        return ended

    def _end(self, order: RefOrder) -> None:
        if order.order_id in self.orders:
            del self.orders[order.order_id]
            self.ended.append(order.order_id)

    def remove(self, order_id: str) -> None:
        self.orders.pop(order_id, None)

    def forget_quote(self) -> None:
        self.quote = None

    # -- inspection ------------------------------------------------------------------

    def ledger(self, book_side: str) -> list[tuple[Decimal, Decimal]]:
        """Non-zero (price, taken) pairs, sorted by price, like SymbolMatcher.ledger."""
        return sorted((price, qty) for price, qty in self.taken[book_side].items() if qty)

    # -- the rules -------------------------------------------------------------------

    def _reconcile(self, book_side: str, levels: Levels, full_depth: bool) -> list[Decimal]:
        ledger = self.taken[book_side]
        if levels:
            best, worst = levels[0][0], levels[-1][0]
            shown = [price for price, _ in levels]
            for price in list(ledger):
                if book_side == "asks":
                    traded_through = price < best
                    inside = best <= price <= worst
                else:
                    traded_through = price > best
                    inside = worst <= price <= best
                vanished = full_depth and inside and price not in shown
                if traded_through or vanished:
                    del ledger[price]
        offers = []
        for price, shown_qty in levels:
            kept = min(ledger.get(price, _ZERO), shown_qty)
            ledger[price] = kept
            offers.append(shown_qty - kept)
        return offers

    @staticmethod
    def _available(order: RefOrder, levels: Levels, offers: list[Decimal]) -> Decimal:
        """Everything the levels still offer at prices acceptable to the order."""
        total = _ZERO
        for index, (price, _) in enumerate(levels):
            if price <= order.limit if order.side == "buy" else price >= order.limit:
                total += offers[index]
        return total

    def _by_priority(self, side: str) -> list[RefOrder]:
        mine = [order for order in self.orders.values() if order.side == side]
        if side == "buy":
            return sorted(mine, key=lambda order: (-order.limit, order.arrival))
        return sorted(mine, key=lambda order: (order.limit, order.arrival))

    def _fill(
        self, order: RefOrder, levels: Levels, offers: list[Decimal], book_side: str, uid: int
    ) -> list[Fill]:
        fills: list[Fill] = []
        for index, (price, _) in enumerate(levels):
            acceptable = price <= order.limit if order.side == "buy" else price >= order.limit
            qty = min(offers[index], order.remaining)
            if not acceptable or qty <= 0:
                continue
            offers[index] -= qty
            order.remaining -= qty
            self.taken[book_side][price] = self.taken[book_side].get(price, _ZERO) + qty
            fills.append((order.order_id, uid, price, qty))
        if order.remaining == 0:
            del self.orders[order.order_id]
        return fills


def _book_side(side: str) -> str:
    return "asks" if side == "buy" else "bids"


def _levels(update: BookUpdate, book_side: str) -> Levels:
    return update.asks if book_side == "asks" else update.bids
