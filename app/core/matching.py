"""The fill model of CONTRACT.md, as a pure synchronous engine for one symbol.

No I/O, no clock: every input (orders, quotes with their receive time) is passed in and
every decision comes back as a list of `Execution`s. The caller persists and publishes.

Per update the engine touches only the orders that can fill: resting orders are kept
in price buckets sorted by limit (best first), each bucket in acceptance order, and the
walk stops at the first bucket whose limit the best available level does not meet.

Most bookTicker updates fill nothing and leave both ledgers as they are; `apply` decides
that from the frame's text (a `BookTicker`) without making a Decimal, by checks that can
never be wrong:
- float() of a decimal string and of a Decimal is correctly rounded, so monotonic:
  `float(a) > float(b)` implies `a > b` exactly. A float comparison that says "past every
  limit and every ledger entry" is therefore exact; a tie or anything closer goes the
  exact way.
- an update whose four texts are those of the last applied one, after an apply that left
  every acceptable offer exhausted or no order able to take it, can fill nothing and
  change no ledger (reconciling the same levels again changes nothing).

Time in force: a GTT order rests until it fills or is removed. An IOC or FOK order meets
exactly one quote, "the current quote": the one known when it is added (rule 5) or, if
none is, the first update applied after (where it takes its turn in price-time priority
like any other order). An IOC takes what that quote offers; a FOK takes its whole size
from it or nothing at all. Either way it then leaves the engine, and `drain_ended()`
names the orders that left with something unfilled (the caller expires them). A market
order is an IOC whose limit is unbounded (buy: +Infinity, sell: 0); the limit is only
ever compared, never computed with. While an IOC/FOK waits for its quote, the next
ticker takes the exact way (it must end them whatever it fills).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal

from sortedcontainers import SortedDict

from app.core.decimals import EXACT, ZERO
from app.core.domain import (
    FRAME_ASK,
    FRAME_BID,
    FRAME_QUOTE,
    BookTicker,
    BookUpdate,
    Execution,
    Level,
    MarketState,
    Side,
    TimeInForce,
)

GTT = TimeInForce.GTT
FOK = TimeInForce.FOK
_NO_LIMIT = {Side.BUY: Decimal("Infinity"), Side.SELL: ZERO}


def engine_limit(side: Side, price: Decimal | None) -> Decimal:
    """The limit the engine matches with: the order's price, or for a market order (no
    price) one that accepts every level."""
    return _NO_LIMIT[side] if price is None else price


class RestingOrder:
    """The engine's view of an open order; `remaining` shrinks as it fills."""

    __slots__ = ("expires_at", "limit", "order_id", "remaining", "side", "tif")

    def __init__(
        self,
        order_id: str,
        side: Side,
        limit: Decimal,
        remaining: Decimal,
        expires_at: float,
        tif: TimeInForce = GTT,
    ) -> None:
        self.order_id = order_id
        self.side = side
        self.limit = limit
        self.remaining = remaining
        self.expires_at = expires_at
        self.tif = tif

    def __repr__(self) -> str:
        return f"RestingOrder({self.order_id!r}, {self.side}, {self.limit}, {self.remaining})"


class _Ledger:
    """Quantity already taken per price on one side of the upstream book (rule 3)."""

    __slots__ = ("_is_ask", "_taken")

    def __init__(self, is_ask: bool) -> None:
        self._taken: SortedDict = SortedDict()
        self._is_ask = is_ask

    def inner_float(self) -> float:
        """float() of the entry nearest the inside of the book (the lowest ask, the highest
        bid); with no entry, the infinity no price passes. A ticker level strictly on the
        outer side of it (ask below it, bid above it) leaves this ledger as it is."""
        taken = self._taken
        if not taken:
            return math.inf if self._is_ask else -math.inf
        return float(taken.peekitem(0 if self._is_ask else -1)[0])

    def __len__(self) -> int:
        return len(self._taken)

    def items(self) -> list[tuple[Decimal, Decimal]]:
        return list(self._taken.items())

    def load(self, entries: tuple[Level, ...]) -> None:
        self._taken = SortedDict((price, taken) for price, taken in entries if taken > 0)

    def reconcile(self, levels: tuple[Level, ...], full_depth: bool) -> list[Decimal]:
        """Forget traded-through prices, clamp shown ones; return what each level offers."""
        taken = self._taken
        if not taken:  # the usual case: nothing taken anywhere, every level offers all
            return [qty for _, qty in levels]
        if levels:
            best = levels[0][0]
            worst = levels[-1][0]
            if self._is_ask:  # asks: everything below the best ask was traded through
                through = list(taken.irange(maximum=best, inclusive=(True, False)))
                inside = taken.irange(best, worst) if full_depth else ()
            else:  # bids: everything above the best bid was traded through
                through = list(taken.irange(minimum=best, inclusive=(False, True)))
                inside = taken.irange(worst, best) if full_depth else ()
            if full_depth:
                shown = {price for price, _ in levels}
                through.extend(price for price in inside if price not in shown)
            for price in through:
                del taken[price]
        offers: list[Decimal] = []
        for price, shown_qty in levels:  # clamp what we hold at each shown level
            already = taken.get(price)
            if already is None:
                offers.append(shown_qty)
                continue
            kept = min(already, shown_qty)
            if kept:
                taken[price] = kept
            else:
                del taken[price]
            offers.append(EXACT.subtract(shown_qty, kept))
        return offers

    def add(self, price: Decimal, qty: Decimal) -> None:
        self._taken[price] = EXACT.add(self._taken.get(price, ZERO), qty)


class _OrderSide:
    """Resting orders of one side, bucketed by limit price, best limit first."""

    __slots__ = ("_best", "_buckets", "side")

    def __init__(self, side: Side) -> None:
        self.side = side
        self._buckets: SortedDict = SortedDict()
        self._best: Decimal | None = None  # cached: read on every update

    def add(self, order: RestingOrder) -> None:
        bucket = self._buckets.get(order.limit)
        if bucket is None:
            bucket = self._buckets[order.limit] = {}
            self._best = None
        bucket[order.order_id] = order

    def remove(self, order: RestingOrder) -> None:
        bucket = self._buckets[order.limit]
        del bucket[order.order_id]
        if not bucket:
            del self._buckets[order.limit]
            self._best = None

    def can_take(self, price: Decimal) -> bool:
        """Whether the best resting limit accepts a level at `price`."""
        if not self._buckets:
            return False
        best = self._best
        if best is None:
            best = self._best = self._buckets.peekitem(-1 if self.side is Side.BUY else 0)[0]
        return _acceptable(self.side, price, best)

    def best_float(self) -> float:
        """float() of the best limit; with no order, the infinity every price passes. A
        level strictly past it (an ask above it, a bid below it) no order accepts."""
        if not self._buckets:
            return -math.inf if self.side is Side.BUY else math.inf
        return float(self._buckets.peekitem(-1 if self.side is Side.BUY else 0)[0])

    def buckets_best_first(self) -> Iterator[tuple[Decimal, dict[str, RestingOrder]]]:
        keys = self._buckets.irange(reverse=self.side is Side.BUY)
        for limit in keys:
            yield limit, self._buckets[limit]


def _acceptable(side: Side, level_price: Decimal, limit: Decimal) -> bool:
    return level_price <= limit if side is Side.BUY else level_price >= limit


def _fills_whole(
    order: RestingOrder, levels: tuple[Level, ...], offers: list[Decimal], level: int
) -> bool:
    """Whether what `levels[level:]` still offer within the order's limit covers all of it."""
    needed = order.remaining
    for index in range(level, len(levels)):
        if not _acceptable(order.side, levels[index][0], order.limit):
            break
        needed = EXACT.subtract(needed, offers[index])
        if needed <= 0:
            return True
    return False


class SymbolMatcher:
    """Matches one symbol's resting orders against its upstream quotes."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.last_update_id: int | None = None
        self._quote: BookUpdate | None = None
        self._orders: dict[str, RestingOrder] = {}
        # IOC/FOK orders added with no quote known: they meet the next applied update.
        self._awaiting: dict[str, RestingOrder] = {}
        # IOC/FOK orders that left with something unfilled, until drain_ended (a list the
        # caller may test for emptiness without a call, on every update).
        self.ended: list[str] = []
        self._sides = {Side.BUY: _OrderSide(Side.BUY), Side.SELL: _OrderSide(Side.SELL)}
        # Buy orders take asks, sell orders take bids.
        self._ledgers = {Side.BUY: _Ledger(is_ask=True), Side.SELL: _Ledger(is_ask=False)}
        self._buyers = (self._sides[Side.BUY], self._ledgers[Side.BUY])
        self._sellers = (self._sides[Side.SELL], self._ledgers[Side.SELL])
        # The texts of the last applied ticker, if after it every acceptable offer was
        # exhausted or no order could take it (None: not known to be so).
        # (Its frame's quote part, if it came as a frame: equal parts, equal texts.)
        self._settled: object = None
        self._skipped_expired = False  # an apply passed an order over (rule 7)
        # Where a ticker certainly fills nothing and changes no ledger, as floats:
        # (ask above, ask below, bid above, bid below), strictly. None: to be worked out
        # again (after anything that may move a best limit or a ledger).
        self._quiet: tuple[float, float, float, float] | None = None

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    @property
    def quote(self) -> BookUpdate | None:
        """The last update applied on the current upstream connection, if any."""
        return self._quote

    def get(self, order_id: str) -> RestingOrder | None:
        return self._orders.get(order_id)

    def ledger(self, book_side: str) -> list[tuple[Decimal, Decimal]]:
        """(price, taken) pairs of the 'asks' or 'bids' ledger, for tests and inspection."""
        return self._ledgers[Side.BUY if book_side == "asks" else Side.SELL].items()

    def market_state(self) -> MarketState:
        """The ledgers and the last applied update id, to persist with the fills."""
        return MarketState(
            self.symbol,
            self.last_update_id,
            asks=tuple(self._ledgers[Side.BUY].items()),
            bids=tuple(self._ledgers[Side.SELL].items()),
        )

    def restore(self, state: MarketState) -> None:
        """Resume from a persisted state (after a restart): what was taken stays taken."""
        if self._orders or self._quote is not None:
            raise ValueError("restore() is only for a matcher that has not started")
        self.last_update_id = state.last_update_id
        self._settled = self._quiet = None
        self._ledgers[Side.BUY].load(state.asks)
        self._ledgers[Side.SELL].load(state.bids)

    def forget_quote(self) -> None:
        """The upstream connection changed: its last quote no longer counts (rule 5)."""
        self._quote = None
        self._settled = None

    def drain_ended(self) -> list[str]:
        """The IOC/FOK orders that met their quote and left the engine with something
        unfilled since the last call, in the order they ended (the caller expires them)."""
        ended, self.ended = self.ended, []
        return ended

    def add(self, order: RestingOrder, *, now: float) -> list[Execution]:
        """Rest `order`; if a quote is known, match it against that quote at once.

        An IOC/FOK order with a quote known meets that quote and never rests; with none,
        it rests until the next applied update and leaves after it."""
        if order.order_id in self._orders:
            raise ValueError(f"order {order.order_id} is already resting")
        if order.remaining <= 0:
            raise ValueError(f"order {order.order_id} has nothing left to fill")
        self._quiet = None  # the orders or (taking at once) the ledger change
        quote = self._quote
        if order.tif is not GTT:
            if quote is None:
                self._orders[order.order_id] = order
                self._sides[order.side].add(order)
                self._awaiting[order.order_id] = order
                self._settled = None  # not matched against a quote
                return []
            return self._meet_at_once(order, quote, now)
        self._orders[order.order_id] = order
        self._sides[order.side].add(order)
        # Rule 7: not if it has expired, nor if the quote arrived at or after its expiry
        # (`now` is a wall clock and may lag the quote's receive time).
        if quote is None or order.expires_at <= max(now, quote.received_at):
            self._settled = None  # it was not matched against the quote
            return []
        levels = quote.asks if order.side is Side.BUY else quote.bids
        ledger = self._ledgers[order.side]
        # The ledger already holds this quote's takings, so this offers only what is left.
        offers = ledger.reconcile(levels, quote.full_depth)
        executions: list[Execution] = []
        self._fill_one(order, levels, offers, 0, quote.update_id, ledger, executions)
        if not order.remaining:
            self._drop(order)
        return executions

    def _meet_at_once(self, order: RestingOrder, quote: BookUpdate, now: float) -> list[Execution]:
        """An IOC/FOK order added while `quote` is known: what it takes from it, if it is
        in time (rule 7); anything left ends it."""
        executions: list[Execution] = []
        if order.expires_at > max(now, quote.received_at):
            levels = quote.asks if order.side is Side.BUY else quote.bids
            ledger = self._ledgers[order.side]
            offers = ledger.reconcile(levels, quote.full_depth)
            if order.tif is not FOK or _fills_whole(order, levels, offers, 0):
                self._fill_one(order, levels, offers, 0, quote.update_id, ledger, executions)
        if order.remaining:
            self.ended.append(order.order_id)
        return executions

    def remove(self, order_id: str) -> RestingOrder | None:
        order = self._orders.get(order_id)
        if order is not None:
            self._drop(order)
        return order

    def apply(self, update: BookUpdate) -> list[Execution] | None:
        """Apply one upstream update; None if it is stale (rule 1) and was skipped."""
        if self.last_update_id is not None and update.update_id <= self.last_update_id:
            return None
        if type(update) is BookTicker and self.take_if_stale_or_quiet(update):
            return []
        self.last_update_id = update.update_id
        self._quote = update
        executions: list[Execution] = []
        self._skipped_expired = False
        self._quiet = None
        for (orders, ledger), levels in ((self._buyers, update.asks), (self._sellers, update.bids)):
            offers = ledger.reconcile(levels, update.full_depth)
            # The common case, nothing can fill, costs one look at the best limit.
            if offers and orders.can_take(levels[0][0]):
                self._match_side(orders.side, levels, offers, update, ledger, executions)
        if self._awaiting:  # this was their quote: what is left of them ends
            for order in list(self._awaiting.values()):
                self.ended.append(order.order_id)
                self._drop(order)
        settled = type(update) is BookTicker and not self._skipped_expired
        if not settled:
            self._settled = None
        else:  # the key take_if_stale_or_quiet compares: the frame's quote, or the texts
            frame = update.frame  # type: ignore[attr-defined]
            self._settled = update.texts if frame is None else frame[FRAME_QUOTE]  # type: ignore[attr-defined]
        return executions

    def take_if_stale_or_quiet(self, update: BookTicker) -> bool | None:
        """Skip a stale ticker (rule 1: False), or apply a fresh one if it certainly fills
        nothing and changes no ledger (then applying it is only taking its update id and
        quote: True); None, having changed nothing, if that is not certain. One call for
        the quote path's usual case (SymbolWorker.submit)."""
        last = self.last_update_id
        if last is not None and update.update_id <= last:
            return False
        if self._awaiting:
            return None  # an IOC/FOK waits for this quote: it must end them (exactly)
        frame = update.frame
        if frame is not None:  # straight from the feed: the frame's text, no str made
            key: object = frame[FRAME_QUOTE]
            if key != self._settled:
                quiet = self._quiet or self._quiet_band()  # as _in_quiet_band, inline: hot
                ask, bid = float(frame[FRAME_ASK]), float(frame[FRAME_BID])
                if not (
                    (quiet[0] < ask < quiet[1] or not ask)
                    and (quiet[2] < bid < quiet[3] or not bid)
                ):
                    return None
                self._settled = key
        else:
            texts = update.texts
            if texts != self._settled:
                if not self._in_quiet_band(float(texts[2]), float(texts[0])):
                    return None
                self._settled = texts
        self.last_update_id = update.update_id
        self._quote = update
        return True

    def _in_quiet_band(self, ask: float, bid: float) -> bool:
        quiet = self._quiet or self._quiet_band()
        # Price 0 is an empty side: nothing to fill, nothing to reconcile.
        return (quiet[0] < ask < quiet[1] or not ask) and (quiet[2] < bid < quiet[3] or not bid)

    def _quiet_band(self) -> tuple[float, float, float, float]:
        """Where a ticker's best ask and bid, as floats, certainly fill nothing and leave
        both ledgers as they are (the module doc: strict float comparisons are exact).

        An ask strictly above the best buy limit no buyer accepts, and strictly below
        the asks ledger's lowest entry it neither trades an entry through nor shows one;
        a bid likewise between the bids ledger's highest entry and the best sell limit."""
        buyers, asks_taken = self._buyers
        sellers, bids_taken = self._sellers
        self._quiet = (
            buyers.best_float(), asks_taken.inner_float(),
            bids_taken.inner_float(), sellers.best_float(),
        )  # fmt: skip
        return self._quiet

    def _match_side(
        self,
        side: Side,
        levels: tuple[Level, ...],
        offers: list[Decimal],
        update: BookUpdate,
        ledger: _Ledger,
        executions: list[Execution],
    ) -> None:
        level = 0
        exhausted = False
        done: list[RestingOrder] = []
        fok_waiting = bool(self._awaiting)  # only then can an order here be a FOK
        for limit, bucket in self._sides[side].buckets_best_first():
            while level < len(levels) and not offers[level]:
                level += 1
            if level == len(levels) or not _acceptable(side, levels[level][0], limit):
                break
            for order in bucket.values():
                if order.expires_at <= update.received_at:
                    self._skipped_expired = True
                    continue  # only updates received before expires_at may fill (rule 7)
                if (
                    fok_waiting
                    and order.tif is FOK
                    and not _fills_whole(order, levels, offers, level)
                ):
                    continue  # all or nothing: it takes nothing, and leaves after this update
                level = self._fill_one(
                    order, levels, offers, level, update.update_id, ledger, executions
                )
                if order.remaining:
                    # It stopped short: the book is exhausted or its next level is past
                    # this limit, so no order of the same or a worse limit can fill.
                    exhausted = True
                    break
                done.append(order)
            if exhausted:
                break
        for order in done:
            self._drop(order)

    @staticmethod
    def _fill_one(
        order: RestingOrder,
        levels: tuple[Level, ...],
        offers: list[Decimal],
        level: int,
        update_id: int,
        ledger: _Ledger,
        executions: list[Execution],
    ) -> int:
        """Take for `order` from `levels[level:]`, best first; return the level reached."""
        while level < len(levels) and order.remaining:
            price = levels[level][0]
            if not _acceptable(order.side, price, order.limit):
                break
            offered = offers[level]
            if not offered:
                level += 1
                continue
            qty = min(offered, order.remaining)
            offers[level] = EXACT.subtract(offered, qty)
            order.remaining = EXACT.subtract(order.remaining, qty)
            ledger.add(price, qty)
            executions.append(Execution(order.order_id, update_id, price, qty))
        return level

    def _drop(self, order: RestingOrder) -> None:
        self._quiet = None
        del self._orders[order.order_id]
        self._sides[order.side].remove(order)
        if order.tif is not GTT:
            self._awaiting.pop(order.order_id, None)
