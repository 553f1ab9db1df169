"""The matching engine (app/core/matching.py), rule by rule of the fill model.

Every test asserts the exact executions: (order_id, price, qty), with update ids where
they matter. Helpers are local so these tests depend on nothing but the engine.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.decimals import fmt
from app.core.domain import BookTicker, BookUpdate, Execution, Side, TimeInForce
from app.core.matching import RestingOrder, SymbolMatcher, engine_limit

D = Decimal
NEVER = 1e18  # an expiry that never comes


def order(
    order_id: str, side: str, limit: str, size: str, expires_at: float = NEVER
) -> RestingOrder:
    return RestingOrder(order_id, Side(side), D(limit), D(size), expires_at)


def ticker(uid: int, bid: tuple[str, str], ask: tuple[str, str], *, at: float = 0.0) -> BookUpdate:
    """A bookTicker update: one (price, qty) level per side."""
    return BookUpdate("X", uid, ((D(bid[0]), D(bid[1])),), ((D(ask[0]), D(ask[1])),), at)


def depth(
    uid: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], *, at: float = 0.0
) -> BookUpdate:
    """A partial-depth snapshot, levels best first."""
    return BookUpdate(
        "X",
        uid,
        tuple((D(p), D(q)) for p, q in bids),
        tuple((D(p), D(q)) for p, q in asks),
        at,
        full_depth=True,
    )


def fills(executions: list[Execution] | None) -> list[tuple[str, str, str]]:
    assert executions is not None, "the update was skipped as stale"
    return [(e.order_id, fmt(e.price), fmt(e.qty)) for e in executions]


def ledger(m: SymbolMatcher, book_side: str) -> list[tuple[str, str]]:
    return [(fmt(price), fmt(qty)) for price, qty in m.ledger(book_side)]


FAR_ASK = ("1000", "1")  # an ask no sell test cares about
FAR_BID = ("1", "1")  # a bid no buy test cares about


# -- rule 2: which levels an order may take, and at what price ------------------------


def test_the_original_example_sell_25_at_42() -> None:
    m = SymbolMatcher("X")
    assert m.add(order("a", "sell", "42", "25"), now=0) == []
    assert fills(m.apply(ticker(1, ("40", "10"), FAR_ASK))) == []
    assert fills(m.apply(ticker(2, ("42", "5"), FAR_ASK))) == [("a", "42", "5")]
    executions = m.apply(ticker(3, ("42.5", "30"), FAR_ASK))
    assert fills(executions) == [("a", "42.5", "20")]
    assert executions is not None and executions[0].update_id == 3
    assert len(m) == 0 and "a" not in m and m.get("a") is None


def test_the_buy_side_mirror() -> None:
    m = SymbolMatcher("X")
    assert m.add(order("b", "buy", "42", "25"), now=0) == []
    assert fills(m.apply(ticker(1, FAR_BID, ("44", "10")))) == []
    assert fills(m.apply(ticker(2, FAR_BID, ("42", "5")))) == [("b", "42", "5")]
    assert fills(m.apply(ticker(3, FAR_BID, ("41.5", "30")))) == [("b", "41.5", "20")]
    assert len(m) == 0


def test_a_buy_never_takes_bids_and_a_sell_never_takes_asks() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "50", "1"), now=0)
    m.add(order("s", "sell", "60", "1"), now=0)
    # The bid (70) is below the buy's limit and the ask (40) above the sell's, but each
    # order may only take the other side of the book.
    assert fills(m.apply(ticker(1, ("70", "9"), ("40", "9")))) == [
        ("b", "40", "1"),
        ("s", "70", "1"),
    ]


def test_a_level_one_tick_past_the_limit_is_not_taken() -> None:
    m = SymbolMatcher("X")
    m.add(order("s", "sell", "42", "1"), now=0)
    m.add(order("b", "buy", "42", "1"), now=0)
    assert fills(m.apply(ticker(1, ("41.99999999", "9"), ("42.00000001", "9")))) == []
    assert len(m) == 2


# -- rule 1: stale updates ------------------------------------------------------------


def test_a_stale_or_repeated_update_id_is_skipped() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "10"), now=0)
    assert fills(m.apply(ticker(5, ("5", "1"), FAR_ASK))) == [("a", "5", "1")]
    assert m.apply(ticker(5, ("5", "3"), FAR_ASK)) is None  # same id
    assert m.apply(ticker(4, ("6", "9"), FAR_ASK)) is None  # older id
    assert m.last_update_id == 5
    assert m.quote is not None and m.quote.update_id == 5  # a skipped update is no quote
    assert ledger(m, "bids") == [("5", "1")]  # nor does it touch the ledger
    assert m.get("a").remaining == D(9)  # type: ignore[union-attr]
    # Rule 5 uses the last applied quote, not the skipped one: nothing is left of it.
    assert m.add(order("b", "sell", "5", "1"), now=0) == []
    assert fills(m.apply(ticker(6, ("5", "3"), FAR_ASK))) == [("a", "5", "2")]


def test_a_stale_depth_snapshot_is_skipped() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "10", "10"), now=0)
    assert fills(m.apply(depth(100, [("1", "1")], [("9", "1")]))) == [("b", "9", "1")]
    assert m.apply(depth(99, [("1", "1")], [("8", "5"), ("9", "5")])) is None
    assert m.apply(depth(100, [("1", "1")], [("8", "5"), ("9", "5")])) is None
    assert fills(m.apply(depth(101, [("1", "1")], [("9", "2")]))) == [("b", "9", "1")]


# -- rule 3: liquidity is counted once --------------------------------------------------


def test_a_repeated_level_offers_nothing_new() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    m.add(order("b", "buy", "6", "100"), now=0)
    assert fills(m.apply(ticker(1, ("5", "3"), ("6", "2")))) == [("b", "6", "2"), ("a", "5", "3")]
    for uid in (2, 3, 4):
        assert fills(m.apply(ticker(uid, ("5", "3"), ("6", "2")))) == []
    assert ledger(m, "bids") == [("5", "3")]
    assert ledger(m, "asks") == [("6", "2")]


def test_growth_offers_only_the_growth() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    assert fills(m.apply(ticker(1, ("5", "3"), FAR_ASK))) == [("a", "5", "3")]
    assert fills(m.apply(ticker(2, ("5", "4.25"), FAR_ASK))) == [("a", "5", "1.25")]
    assert fills(m.apply(ticker(3, ("5", "10"), FAR_ASK))) == [("a", "5", "5.75")]
    assert ledger(m, "bids") == [("5", "10")]


def test_a_shrink_eats_into_what_was_taken_first() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    assert fills(m.apply(ticker(1, ("5", "3"), FAR_ASK))) == [("a", "5", "3")]
    assert fills(m.apply(ticker(2, ("5", "2"), FAR_ASK))) == []
    assert ledger(m, "bids") == [("5", "2")]  # min(3, 2)
    assert fills(m.apply(ticker(3, ("5", "1"), FAR_ASK))) == []
    assert ledger(m, "bids") == [("5", "1")]
    # Growing again offers everything beyond the one unit still ours: 4 - 1.
    assert fills(m.apply(ticker(4, ("5", "4"), FAR_ASK))) == [("a", "5", "3")]
    assert ledger(m, "bids") == [("5", "4")]


def test_a_shrink_above_what_was_taken_leaves_the_rest_on_offer() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "2"), now=0)
    assert fills(m.apply(ticker(1, ("5", "5"), FAR_ASK))) == [("a", "5", "2")]
    m.forget_quote()  # so that b does not take the rest of that quote on acceptance
    m.add(order("b", "sell", "5", "100"), now=0)
    # 5 shrinks to 4: our 2 stay at the front, 4 - min(2, 4) = 2 are new to us.
    assert fills(m.apply(ticker(2, ("5", "4"), FAR_ASK))) == [("b", "5", "2")]
    assert ledger(m, "bids") == [("5", "4")]


def test_a_shrink_to_zero_empties_the_entry() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    assert fills(m.apply(ticker(1, ("5", "3"), FAR_ASK))) == [("a", "5", "3")]
    assert fills(m.apply(ticker(2, ("5", "0"), FAR_ASK))) == []
    assert ledger(m, "bids") == []
    assert fills(m.apply(ticker(3, ("5", "2"), FAR_ASK))) == [("a", "5", "2")]


def test_a_hidden_bid_keeps_its_entry_until_traded_through() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    assert fills(m.apply(ticker(1, ("5", "3"), FAR_ASK))) == [("a", "5", "3")]
    # A better bid hides 5: its entry stays.
    assert fills(m.apply(ticker(2, ("6", "1"), FAR_ASK))) == [("a", "6", "1")]
    assert ledger(m, "bids") == [("5", "3"), ("6", "1")]
    # 5 shows again with 3: still ours, nothing new; 6 is now above the best bid: gone.
    assert fills(m.apply(ticker(3, ("5", "3"), FAR_ASK))) == []
    assert ledger(m, "bids") == [("5", "3")]
    # The best bid drops to 4: 5 was traded through and is forgotten.
    assert fills(m.apply(ticker(4, ("4", "1"), FAR_ASK))) == []
    assert ledger(m, "bids") == []
    assert fills(m.apply(ticker(5, ("5", "3"), FAR_ASK))) == [("a", "5", "3")]


def test_a_hidden_ask_keeps_its_entry_until_traded_through() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "10", "100"), now=0)
    assert fills(m.apply(ticker(1, FAR_BID, ("9", "2")))) == [("b", "9", "2")]
    # A better ask hides 9.
    assert fills(m.apply(ticker(2, FAR_BID, ("8", "1")))) == [("b", "8", "1")]
    assert ledger(m, "asks") == [("8", "1"), ("9", "2")]
    assert fills(m.apply(ticker(3, FAR_BID, ("9", "2.5")))) == [("b", "9", "0.5")]
    assert ledger(m, "asks") == [("9", "2.5")]  # 8 is below the best ask: traded through
    # The best ask rises to 11: 9 was traded through.
    assert fills(m.apply(ticker(4, FAR_BID, ("11", "1")))) == []
    assert ledger(m, "asks") == []
    assert fills(m.apply(ticker(5, FAR_BID, ("9", "2")))) == [("b", "9", "2")]


def test_the_two_ledgers_are_independent() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "10", "1"), now=0)
    assert fills(m.apply(ticker(1, ("10", "5"), ("10", "5")))) == [("b", "10", "1")]
    assert ledger(m, "asks") == [("10", "1")]
    assert ledger(m, "bids") == []
    assert fills(m.add(order("s", "sell", "10", "9"), now=0)) == [("s", "10", "5")]
    assert fills(m.apply(ticker(2, ("10", "5"), ("10", "5")))) == []
    assert ledger(m, "bids") == [("10", "5")]
    assert ledger(m, "asks") == [("10", "1")]


# -- rule 3 in depth mode --------------------------------------------------------------


def test_depth_forgets_an_unlisted_price_inside_the_shown_range_only() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "104", "7"), now=0)
    update = depth(1, [("99", "1")], [("100", "2"), ("101", "3"), ("102", "1"), ("104", "1")])
    assert fills(m.apply(update)) == [
        ("b", "100", "2"),
        ("b", "101", "3"),
        ("b", "102", "1"),
        ("b", "104", "1"),
    ]
    m.add(order("c", "buy", "104", "100"), now=0)
    # 101 vanished inside 100..102: traded through. 104 lies beyond the worst level
    # shown, so it is merely out of view and keeps its entry.
    update = depth(2, [("99", "1")], [("100", "2"), ("102", "1")])
    assert fills(m.apply(update)) == []
    assert ledger(m, "asks") == [("100", "2"), ("102", "1"), ("104", "1")]
    update = depth(3, [("99", "1")], [("100", "2"), ("101", "5"), ("102", "1"), ("104", "3")])
    assert fills(m.apply(update)) == [("c", "101", "5"), ("c", "104", "2")]


def test_depth_forgets_an_unlisted_bid_inside_the_shown_range() -> None:
    m = SymbolMatcher("X")
    m.add(order("s", "sell", "97", "100"), now=0)
    update = depth(1, [("100", "1"), ("99", "1"), ("98", "1"), ("97", "1")], [("101", "1")])
    assert fills(m.apply(update)) == [
        ("s", "100", "1"),
        ("s", "99", "1"),
        ("s", "98", "1"),
        ("s", "97", "1"),
    ]
    update = depth(2, [("100", "1"), ("98", "1")], [("101", "1")])  # 99 gone; 97 out of view
    assert fills(m.apply(update)) == []
    assert ledger(m, "bids") == [("97", "1"), ("98", "1"), ("100", "1")]
    update = depth(3, [("100", "1"), ("99", "1"), ("98", "1"), ("97", "1")], [("101", "1")])
    assert fills(m.apply(update)) == [("s", "99", "1")]


def test_a_ticker_does_not_forget_prices_it_cannot_see() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "104", "100"), now=0)
    m.apply(depth(1, [("99", "1")], [("100", "2"), ("101", "3"), ("102", "1")]))
    # A bookTicker shows only its best level: 101 and 102 are out of view, not gone.
    assert fills(m.apply(ticker(2, ("99", "1"), ("100", "2")))) == []
    assert ledger(m, "asks") == [("100", "2"), ("101", "3"), ("102", "1")]


def test_depth_sweeps_several_levels_best_first_up_to_the_limit() -> None:
    m = SymbolMatcher("X")
    m.add(order("s", "sell", "98.5", "10"), now=0)
    update = depth(1, [("100", "2"), ("99.5", "3"), ("99", "1"), ("98", "50")], [("101", "1")])
    result = m.apply(update)
    assert fills(result) == [("s", "100", "2"), ("s", "99.5", "3"), ("s", "99", "1")]
    assert result is not None and {e.update_id for e in result} == {1}
    assert m.get("s").remaining == D(4)  # type: ignore[union-attr]


def test_one_depth_update_fills_several_orders_across_levels() -> None:
    m = SymbolMatcher("X")
    m.add(order("s2", "sell", "99", "3"), now=0)
    m.add(order("s1", "sell", "98", "3"), now=0)
    m.add(order("s3", "sell", "99", "3"), now=0)
    update = depth(1, [("100", "2"), ("99", "2"), ("98", "5")], [("101", "1")])
    # s1 (limit 98) is the best sell and goes first; s2 and s3 cannot take the 98 bid.
    assert fills(m.apply(update)) == [("s1", "100", "2"), ("s1", "99", "1"), ("s2", "99", "1")]
    assert ledger(m, "bids") == [("99", "2"), ("100", "2")]


def test_a_depth_update_with_an_empty_side() -> None:
    m = SymbolMatcher("X")
    m.add(order("s", "sell", "5", "10"), now=0)
    m.add(order("b", "buy", "5", "10"), now=0)
    assert fills(m.apply(depth(1, [("5", "1")], []))) == [("s", "5", "1")]
    assert fills(m.apply(depth(2, [], [("5", "1")]))) == [("b", "5", "1")]
    assert ledger(m, "bids") == [("5", "1")]  # nothing shown: nothing forgotten


# -- rule 4: priority ----------------------------------------------------------------


def test_sells_are_served_by_lowest_limit_then_time() -> None:
    m = SymbolMatcher("X")
    m.add(order("early", "sell", "10", "4"), now=0)
    m.add(order("best", "sell", "9", "4"), now=0)
    m.add(order("late", "sell", "10", "4"), now=0)
    m.add(order("too-dear", "sell", "11", "4"), now=0)
    assert fills(m.apply(ticker(1, ("10", "10"), FAR_ASK))) == [
        ("best", "10", "4"),
        ("early", "10", "4"),
        ("late", "10", "2"),
    ]
    assert fills(m.apply(ticker(2, ("11", "10"), FAR_ASK))) == [
        ("late", "11", "2"),
        ("too-dear", "11", "4"),
    ]


def test_buys_are_served_by_highest_limit_then_time() -> None:
    m = SymbolMatcher("X")
    m.add(order("early", "buy", "10", "4"), now=0)
    m.add(order("best", "buy", "11", "4"), now=0)
    m.add(order("late", "buy", "10", "4"), now=0)
    m.add(order("too-cheap", "buy", "9", "4"), now=0)
    assert fills(m.apply(ticker(1, FAR_BID, ("10", "10")))) == [
        ("best", "10", "4"),
        ("early", "10", "4"),
        ("late", "10", "2"),
    ]


def test_a_partly_filled_order_keeps_its_place_and_a_re_added_one_goes_last() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "10", "5"), now=0)
    m.add(order("b", "sell", "10", "5"), now=0)
    m.add(order("c", "sell", "10", "5"), now=0)
    assert fills(m.apply(ticker(1, ("10", "3"), FAR_ASK))) == [("a", "10", "3")]
    removed = m.remove("b")
    assert removed is not None
    m.add(removed, now=0)  # time priority is the order of add calls
    assert fills(m.apply(ticker(2, ("10", "10"), FAR_ASK))) == [
        ("a", "10", "2"),
        ("c", "10", "5"),
    ]
    assert fills(m.apply(ticker(3, ("10", "20"), FAR_ASK))) == [("b", "10", "5")]


# -- rule 5: an order accepted while a quote is known ---------------------------------


def test_an_accepted_order_matches_what_is_left_of_the_known_quote() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "1"), now=0)
    assert fills(m.apply(ticker(7, ("5", "3"), ("6", "1")))) == [("a", "5", "1")]
    result = m.add(order("b", "sell", "5", "5"), now=0)
    assert fills(result) == [("b", "5", "2")]  # 3 shown, 1 already taken
    assert result[0].update_id == 7
    assert fills(m.add(order("c", "sell", "5", "5"), now=0)) == []  # nothing left
    assert fills(m.add(order("d", "buy", "6", "5"), now=0)) == [("d", "6", "1")]
    assert fills(m.add(order("e", "buy", "5.99", "5"), now=0)) == []  # limit not met
    assert ledger(m, "bids") == [("5", "3")]
    assert ledger(m, "asks") == [("6", "1")]
    # The next update counts that liquidity once: only growth fills.
    assert fills(m.apply(ticker(8, ("5", "4"), ("6", "1")))) == [("b", "5", "1")]


def test_an_accepted_order_sweeps_the_known_depth_snapshot() -> None:
    m = SymbolMatcher("X")
    m.apply(depth(1, [("99", "1")], [("100", "1"), ("101", "2"), ("103", "5")]))
    assert fills(m.add(order("b", "buy", "102", "10"), now=0)) == [
        ("b", "100", "1"),
        ("b", "101", "2"),
    ]
    assert m.get("b").remaining == D(7)  # type: ignore[union-attr]


def test_forget_quote_stops_matching_on_acceptance_until_the_next_update() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, ("5", "3"), ("6", "1")))
    m.forget_quote()
    assert m.quote is None
    assert fills(m.add(order("a", "sell", "5", "1"), now=0)) == []
    assert fills(m.add(order("b", "buy", "6", "1"), now=0)) == []
    assert len(m) == 2
    assert m.apply(ticker(1, ("5", "3"), ("6", "1"))) is None  # still stale after forget
    assert fills(m.add(order("c", "sell", "5", "1"), now=0)) == []
    assert fills(m.apply(ticker(2, ("5", "3"), ("6", "1")))) == [
        ("b", "6", "1"),
        ("a", "5", "1"),
        ("c", "5", "1"),
    ]
    assert fills(m.add(order("d", "sell", "5", "5"), now=0)) == [("d", "5", "1")]


def test_an_order_filled_on_acceptance_leaves_the_engine() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, ("5", "3"), ("6", "1")))
    assert fills(m.add(order("a", "sell", "4", "2"), now=0)) == [("a", "5", "2")]
    assert "a" not in m and len(m) == 0
    assert fills(m.apply(ticker(2, ("5", "9"), ("6", "1")))) == []


# -- rule 7: expiry ------------------------------------------------------------------


def test_only_updates_received_before_expires_at_fill() -> None:
    m = SymbolMatcher("X")
    m.add(order("short", "sell", "5", "1", expires_at=10.0), now=0)
    m.add(order("long", "sell", "5", "1", expires_at=20.0), now=0)
    m.add(order("next", "sell", "5", "1", expires_at=10.5), now=0)
    # Received exactly at 10.0: not before `short`'s expiry, so `short` is passed over
    # and its share goes to the next in line.
    assert fills(m.apply(ticker(1, ("5", "2"), FAR_ASK, at=10.0))) == [
        ("long", "5", "1"),
        ("next", "5", "1"),
    ]
    assert "short" in m  # the service expires it; the engine only refuses to fill it
    assert fills(m.apply(ticker(2, ("5", "5"), FAR_ASK, at=11.0))) == []
    m2 = SymbolMatcher("X")
    m2.add(order("short", "sell", "5", "1", expires_at=10.0), now=0)
    assert fills(m2.apply(ticker(1, ("5", "2"), FAR_ASK, at=9.999))) == [("short", "5", "1")]


def test_an_order_accepted_at_or_after_its_expiry_does_not_fill_on_acceptance() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, ("5", "3"), FAR_ASK, at=1.0))
    assert fills(m.add(order("a", "sell", "5", "1", expires_at=2.0), now=2.0)) == []
    assert fills(m.add(order("b", "sell", "5", "1", expires_at=3.0), now=2.0)) == [("b", "5", "1")]


def test_a_quote_received_at_or_after_expires_at_does_not_fill_on_acceptance() -> None:
    # The quote arrived at 10; the order expires at 5. The engine has no clock of its
    # own, so `now` (the acceptance time) may lag a quote's receive time, e.g. after a
    # wall-clock step back. Rule 7 still forbids the fill.
    m = SymbolMatcher("X")
    m.apply(ticker(1, ("5", "3"), FAR_ASK, at=10.0))
    assert fills(m.add(order("a", "sell", "5", "1", expires_at=5.0), now=0.0)) == []
    assert fills(m.add(order("b", "sell", "5", "1", expires_at=10.0), now=0.0)) == []
    assert fills(m.add(order("c", "sell", "5", "1", expires_at=10.5), now=0.0)) == [("c", "5", "1")]


# -- rule 6: exact decimals -----------------------------------------------------------

BIG = "99999999999999999999.999999999999999999"  # < 10^20, 18 fractional digits


def test_exact_decimals_at_the_bounds() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", BIG, BIG), now=0)
    assert fills(m.apply(ticker(1, FAR_BID, (BIG, "0.000000000000000001")))) == [
        ("b", BIG, "0.000000000000000001"),
    ]
    assert m.get("b").remaining == D("99999999999999999999.999999999999999998")  # type: ignore[union-attr]
    assert fills(m.apply(ticker(2, FAR_BID, (BIG, "0.000000000000000003")))) == [
        ("b", BIG, "0.000000000000000002"),
    ]
    assert ledger(m, "asks") == [(BIG, "0.000000000000000003")]
    # The whole book at that price now: offers BIG - 3e-18, exactly what is left.
    assert fills(m.apply(ticker(3, FAR_BID, (BIG, BIG)))) == [
        ("b", BIG, "99999999999999999999.999999999999999996"),
    ]
    assert len(m) == 0
    assert ledger(m, "asks") == [(BIG, BIG)]


def test_exact_decimals_on_the_sell_side_with_tiny_prices() -> None:
    m = SymbolMatcher("X")
    tiny = "0.000000000000000001"
    m.add(order("s", "sell", tiny, "12345678901234567890.123456789012345678"), now=0)
    m.add(order("t", "sell", "0.000000000000000002", "1"), now=0)
    update = depth(
        1,
        [("0.000000000000000002", "0.000000000000000007"), (tiny, "12345678901234567890")],
        [("1", "1")],
    )
    assert fills(m.apply(update)) == [
        ("s", "0.000000000000000002", "0.000000000000000007"),
        ("s", tiny, "12345678901234567890"),
    ]
    assert m.get("s").remaining == D("0.123456789012345671")  # type: ignore[union-attr]


# -- bookkeeping: remove, filled orders, bad input --------------------------------------


def test_remove() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "1"), now=0)
    m.add(order("b", "sell", "5", "3"), now=0)
    removed = m.remove("a")
    assert removed is not None and removed.order_id == "a"
    assert m.remove("a") is None and m.remove("nope") is None
    assert "a" not in m and len(m) == 1
    assert fills(m.apply(ticker(1, ("5", "1"), FAR_ASK))) == [("b", "5", "1")]
    partly = m.remove("b")  # a partly filled order can be removed too
    assert partly is not None and partly.remaining == D(2)
    assert fills(m.apply(ticker(2, ("5", "9"), FAR_ASK))) == []
    assert len(m) == 0


def test_filled_orders_leave_the_engine_and_never_fill_again() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "1"), now=0)
    m.add(order("b", "sell", "5", "2"), now=0)
    assert fills(m.apply(ticker(1, ("5", "2"), FAR_ASK))) == [("a", "5", "1"), ("b", "5", "1")]
    assert "a" not in m and m.get("a") is None and len(m) == 1
    assert fills(m.apply(ticker(2, ("5", "9"), FAR_ASK))) == [("b", "5", "1")]
    assert len(m) == 0
    assert fills(m.apply(ticker(3, ("5", "99"), FAR_ASK))) == []
    # The id is free again (and the new order takes what is left of the quote).
    assert fills(m.add(order("a", "sell", "5", "1"), now=0)) == [("a", "5", "1")]


def test_add_rejects_a_duplicate_or_an_empty_order() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "1"), now=0)
    with pytest.raises(ValueError):
        m.add(order("a", "buy", "5", "1"), now=0)
    with pytest.raises(ValueError):
        m.add(order("z", "buy", "5", "0"), now=0)
    assert len(m) == 1


# -- cost: only orders that can fill are touched ---------------------------------------

_touched: set[str] | None = None  # ids of the orders whose attributes were read


class _WatchedOrder(RestingOrder):
    """A RestingOrder that records every attribute read while `_touched` is set."""

    def __getattribute__(self, name: str) -> object:
        if _touched is not None:
            _touched.add(object.__getattribute__(self, "order_id"))
        return object.__getattribute__(self, name)


def _crowd(resting: int, monkeypatch: pytest.MonkeyPatch) -> tuple[SymbolMatcher, list[str]]:
    """`resting` orders that cannot fill at 100 (sells >= 101, buys <= 99), both sides,
    many limits, plus three eager sells at 100 added in the middle of the crowd."""
    m = SymbolMatcher("X")
    for n in range(resting):
        if n == resting // 2:
            for k in range(3):
                m.add(_WatchedOrder(f"eager{k}", Side.SELL, D(100), D(1), NEVER), now=0)
        limit = D(101 + n % 50) if n % 2 else D(99 - n % 50)
        side = Side.SELL if n % 2 else Side.BUY
        m.add(_WatchedOrder(f"o{n}", side, limit, D("1.5"), NEVER), now=0)
    calls: list[str] = []
    original = SymbolMatcher._fill_one

    def counting(order: RestingOrder, *args: object) -> int:
        calls.append(order.order_id)
        return original(order, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(m, "_fill_one", counting)
    return m, calls


def _touches(m: SymbolMatcher, update: BookUpdate) -> tuple[list[Execution] | None, set[str]]:
    global _touched
    _touched = set()
    try:
        result = m.apply(update)
        return result, _touched
    finally:
        _touched = None


@pytest.mark.parametrize("resting", [10, 10_000])
def test_resting_orders_that_cannot_fill_are_not_touched(
    resting: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, calls = _crowd(resting, monkeypatch)
    assert len(m) == resting + 3
    # Nothing can fill: no order is looked at, on either side, ticker or depth.
    for uid, update in enumerate(
        [
            ticker(1, ("99.5", "100"), ("100.5", "100")),
            depth(2, [("99.5", "100"), ("99.4", "100")], [("100.5", "100"), ("100.6", "100")]),
            ticker(3, ("99.5", "100"), ("100.5", "100")),
        ]
    ):
        result, touched = _touches(m, update)
        assert fills(result) == [], uid
        assert touched == set() and calls == [], uid
    # Two and a half of the three eager sells fill: those three are touched, nobody else.
    result, touched = _touches(m, ticker(4, ("100", "2.5"), ("100.5", "100")))
    assert fills(result) == [
        ("eager0", "100", "1"),
        ("eager1", "100", "1"),
        ("eager2", "100", "0.5"),
    ]
    filled = {e.order_id for e in result or []}
    assert touched == filled and calls == ["eager0", "eager1", "eager2"]
    assert len(touched) <= len(filled) + 1
    # 2 more show at 100: eager2 takes its last 0.5, and the walk stops at the next
    # limit (101), which no bid meets, without looking at the orders resting there.
    calls.clear()
    update = depth(5, [("100", "4.5"), ("99", "100")], [("100.5", "100")])
    result, touched = _touches(m, update)
    assert fills(result) == [("eager2", "100", "0.5")]
    assert touched == {"eager2"} and calls == ["eager2"]


@pytest.mark.parametrize("resting", [10, 10_000])
def test_a_queue_at_one_limit_is_walked_only_as_far_as_liquidity_goes(
    resting: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = SymbolMatcher("X")
    for n in range(resting):
        m.add(_WatchedOrder(f"q{n}", Side.BUY, D(100), D(1), NEVER), now=0)
    calls: list[str] = []
    original = SymbolMatcher._fill_one
    monkeypatch.setattr(m, "_fill_one", lambda o, *a: calls.append(o.order_id) or original(o, *a))
    result, touched = _touches(m, ticker(1, FAR_BID, ("100", "3.5")))
    assert fills(result) == [
        ("q0", "100", "1"),
        ("q1", "100", "1"),
        ("q2", "100", "1"),
        ("q3", "100", "0.5"),
    ]
    assert touched == {"q0", "q1", "q2", "q3"}
    assert calls == ["q0", "q1", "q2", "q3"]
    assert len(m) == resting - 3
    result, touched = _touches(m, ticker(2, FAR_BID, ("100", "3.5")))  # repeated: nothing new
    assert fills(result) == [] and touched == set()


# -- time in force: IOC, FOK and market orders meet one quote ------------------------


def tif_order(
    order_id: str, side: str, limit: str | None, size: str, tif: str, expires_at: float = NEVER
) -> RestingOrder:
    """An IOC/FOK order; `limit` None is a market order."""
    price = engine_limit(Side(side), None if limit is None else D(limit))
    return RestingOrder(order_id, Side(side), price, D(size), expires_at, TimeInForce(tif))


def test_an_ioc_takes_the_known_quote_and_the_rest_ends_at_once() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, FAR_BID, ("10", "2")))
    assert fills(m.add(tif_order("ioc", "buy", "10", "5", "IOC"), now=0)) == [("ioc", "10", "2")]
    assert m.drain_ended() == ["ioc"] and m.drain_ended() == []
    assert "ioc" not in m and len(m) == 0
    assert fills(m.apply(ticker(2, FAR_BID, ("10", "9")))) == []  # never on a later quote


def test_an_ioc_filled_by_its_quote_ends_filled_not_expired() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, ("10", "3"), FAR_ASK))
    assert fills(m.add(tif_order("ioc", "sell", "10", "3", "IOC"), now=0)) == [("ioc", "10", "3")]
    assert m.drain_ended() == [] and len(m) == 0


def test_an_ioc_with_no_quote_known_waits_for_the_first_one_then_ends() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, FAR_BID, ("12", "1")))
    m.forget_quote()  # e.g. a reconnect: no current quote
    assert m.add(tif_order("ioc", "buy", "10", "5", "IOC"), now=0) == []
    assert m.drain_ended() == [] and "ioc" in m  # waiting
    assert m.apply(ticker(1, FAR_BID, ("10", "1"))) is None  # stale: not its quote
    assert m.drain_ended() == [] and "ioc" in m
    assert fills(m.apply(ticker(2, FAR_BID, ("10", "1")))) == [("ioc", "10", "1")]
    assert m.drain_ended() == ["ioc"] and "ioc" not in m


def test_a_waiting_ioc_ends_even_when_its_quote_offers_nothing() -> None:
    m = SymbolMatcher("X")
    m.add(tif_order("ioc", "buy", "10", "5", "IOC"), now=0)
    assert fills(m.apply(ticker(1, FAR_BID, ("11", "4")))) == []
    assert m.drain_ended() == ["ioc"] and len(m) == 0


def test_a_waiting_ioc_takes_its_turn_by_price_then_time() -> None:
    m = SymbolMatcher("X")
    m.add(order("gtt", "buy", "10", "2"), now=0)
    m.add(tif_order("ioc", "buy", "11", "2", "IOC"), now=0)  # better limit: first
    m.add(order("late", "buy", "11", "2"), now=0)  # same limit, later: after it
    assert fills(m.apply(ticker(1, FAR_BID, ("10", "3")))) == [
        ("ioc", "10", "2"), ("late", "10", "1"),
    ]  # fmt: skip
    assert m.drain_ended() == [] and "gtt" in m and "late" in m


def test_a_fok_that_the_known_quote_cannot_fill_ends_with_no_fill() -> None:
    m = SymbolMatcher("X")
    m.apply(depth(1, [], [("10", "1"), ("11", "1"), ("12", "5")]))
    assert m.add(tif_order("fok", "buy", "11", "3", "FOK"), now=0) == []  # 2 within 11
    assert m.drain_ended() == ["fok"] and len(m) == 0
    assert ledger(m, "asks") == []  # it took nothing
    # The same size at a limit that reaches far enough fills entirely, across levels.
    assert fills(m.add(tif_order("fok2", "buy", "12", "3", "FOK"), now=0)) == [
        ("fok2", "10", "1"), ("fok2", "11", "1"), ("fok2", "12", "1"),
    ]  # fmt: skip
    assert m.drain_ended() == []


def test_a_fok_counts_only_what_the_orders_ahead_of_it_leave() -> None:
    m = SymbolMatcher("X")
    m.add(order("ahead", "sell", "9", "2"), now=0)
    m.add(tif_order("fok", "sell", "10", "2", "FOK"), now=0)
    m.add(order("behind", "sell", "10", "5"), now=0)
    # 3 shown at 10: "ahead" takes 2, the 1 left cannot fill the FOK, so "behind" gets it.
    assert fills(m.apply(ticker(1, ("10", "3"), FAR_ASK))) == [
        ("ahead", "10", "2"), ("behind", "10", "1"),
    ]  # fmt: skip
    assert m.drain_ended() == ["fok"] and "fok" not in m and "behind" in m


def test_a_waiting_fok_that_its_quote_can_fill_fills_entirely() -> None:
    m = SymbolMatcher("X")
    m.add(tif_order("fok", "sell", "10", "2", "FOK"), now=0)
    m.add(order("behind", "sell", "10", "5"), now=0)
    assert fills(m.apply(ticker(1, ("10", "3"), FAR_ASK))) == [
        ("fok", "10", "2"), ("behind", "10", "1"),
    ]  # fmt: skip
    assert m.drain_ended() == []


def test_a_market_buy_takes_every_ask_level_and_a_market_sell_every_bid() -> None:
    m = SymbolMatcher("X")
    m.apply(depth(1, [("9", "1"), ("1", "1")], [("10", "1"), ("99999", "1")]))
    buy = tif_order("mb", "buy", None, "5", "IOC")
    assert fills(m.add(buy, now=0)) == [("mb", "10", "1"), ("mb", "99999", "1")]
    sell = tif_order("ms", "sell", None, "2", "IOC")
    assert fills(m.add(sell, now=0)) == [("ms", "9", "1"), ("ms", "1", "1")]
    assert m.drain_ended() == ["mb"] and len(m) == 0


def test_a_waiting_market_order_comes_before_every_limit() -> None:
    m = SymbolMatcher("X")
    m.add(order("limit", "buy", "1000", "1"), now=0)
    m.add(tif_order("market", "buy", None, "1", "IOC"), now=0)
    assert fills(m.apply(ticker(1, FAR_BID, ("10", "1")))) == [("market", "10", "1")]
    assert m.drain_ended() == [] and "limit" in m


def test_an_ioc_accepted_after_its_expiry_takes_nothing_and_ends() -> None:
    m = SymbolMatcher("X")
    m.apply(ticker(1, FAR_BID, ("10", "5"), at=5.0))
    assert m.add(tif_order("ioc", "buy", "10", "1", "IOC", expires_at=5.0), now=1.0) == []
    assert m.drain_ended() == ["ioc"] and len(m) == 0


def test_a_removed_waiting_order_does_not_end_at_the_next_quote() -> None:
    m = SymbolMatcher("X")
    m.add(tif_order("ioc", "buy", "10", "1", "IOC"), now=0)
    assert m.remove("ioc") is not None
    m.apply(ticker(1, FAR_BID, ("10", "5")))
    assert m.drain_ended() == []


def test_a_quiet_ticker_is_not_taken_at_once_while_an_ioc_waits_for_its_quote() -> None:
    m = SymbolMatcher("X")
    m.add(order("gtt", "sell", "50", "1"), now=0)
    quiet = BookTicker("X", 1, ("5", "3", "100", "1"), 0.0)  # nobody could take it
    assert m.take_if_stale_or_quiet(quiet) is True  # only its update id and quote: taken
    m.forget_quote()
    m.add(tif_order("ioc", "sell", "10", "5", "IOC"), now=0)
    assert m.take_if_stale_or_quiet(BookTicker("X", 2, ("5", "3", "100", "1"), 0.0)) is None
    assert m.apply(BookTicker("X", 2, ("5", "3", "100", "1"), 0.0)) == []
    assert m.drain_ended() == ["ioc"] and "gtt" in m
