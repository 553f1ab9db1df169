"""The matching engine, rule by rule (CONTRACT.md, "Fill model")."""

from __future__ import annotations

from app.engine.matching import SymbolMatcher
from tests.engine_helpers import D, depth, fills, order, ticker


def test_the_original_example_sell_25_at_42() -> None:
    m = SymbolMatcher("X")
    assert m.add(order("a", "sell", "42", "25"), now=0) == []
    assert fills(m.apply(ticker(1, "40", "10", "50", "1"))) == []
    assert fills(m.apply(ticker(2, "42", "5", "50", "1"))) == [("a", "42", "5")]
    assert fills(m.apply(ticker(3, "42.5", "30", "50", "1"))) == [("a", "42.5", "20")]
    assert len(m) == 0 and "a" not in m


def test_buy_takes_asks_at_or_below_its_limit_at_the_ask_price() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "100", "5"), now=0)
    assert fills(m.apply(ticker(1, "1", "1", "100.01", "9"))) == []
    assert fills(m.apply(ticker(2, "1", "1", "99", "2"))) == [("b", "99", "2")]
    assert fills(m.apply(ticker(3, "1", "1", "100", "9"))) == [("b", "100", "3")]


def test_stale_and_repeated_update_ids_are_skipped() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "1", "10"), now=0)
    assert fills(m.apply(ticker(5, "1", "1", "2", "1"))) == [("a", "1", "1")]
    assert m.apply(ticker(5, "1", "3", "2", "1")) is None
    assert m.apply(ticker(4, "1", "9", "2", "1")) is None
    assert m.last_update_id == 5


def test_liquidity_is_counted_once() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    assert fills(m.apply(ticker(1, "5", "3", "6", "1"))) == [("a", "5", "3")]
    assert fills(m.apply(ticker(2, "5", "3", "6", "1"))) == []  # repeated: nothing new
    assert fills(m.apply(ticker(3, "5", "4", "6", "1"))) == [("a", "5", "1")]  # growth only
    assert fills(m.apply(ticker(4, "5", "2", "6", "1"))) == []  # shrink eats what we took
    assert m.ledger("bids") == [(D(5), D(2))]
    assert fills(m.apply(ticker(5, "5", "3", "6", "1"))) == [("a", "5", "1")]


def test_a_hidden_level_keeps_its_entry_until_traded_through() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "100"), now=0)
    assert fills(m.apply(ticker(1, "5", "3", "7", "1"))) == [("a", "5", "3")]
    # A better bid hides 5: its entry stays.
    assert fills(m.apply(ticker(2, "6", "1", "7", "1"))) == [("a", "6", "1")]
    assert (D(5), D(3)) in m.ledger("bids")
    # 5 shows again with 3: still ours.
    assert fills(m.apply(ticker(3, "5", "3", "7", "1"))) == []
    # Best bid drops to 4: everything above (5 and 6) was traded through and is forgotten.
    assert fills(m.apply(ticker(4, "4", "1", "7", "1"))) == []
    assert m.ledger("bids") == []
    assert fills(m.apply(ticker(5, "5", "3", "7", "1"))) == [("a", "5", "3")]


def test_asks_below_the_best_ask_are_traded_through() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "10", "100"), now=0)
    assert fills(m.apply(ticker(1, "1", "1", "8", "2"))) == [("b", "8", "2")]
    assert fills(m.apply(ticker(2, "1", "1", "9", "1"))) == [("b", "9", "1")]
    assert m.ledger("asks") == [(D(9), D(1))]  # 8 is below the best ask: traded through
    assert fills(m.apply(ticker(3, "1", "1", "8", "2"))) == [("b", "8", "2")]
    assert m.ledger("asks") == [(D(8), D(2)), (D(9), D(1))]  # 9 hidden behind 8, kept


def test_price_then_time_priority_and_several_orders_per_update() -> None:
    m = SymbolMatcher("X")
    m.add(order("early", "sell", "10", "4"), now=0)
    m.add(order("best", "sell", "9", "4"), now=0)
    m.add(order("late", "sell", "10", "4"), now=0)
    m.add(order("too-dear", "sell", "11", "4"), now=0)
    result = fills(m.apply(ticker(1, "10", "10", "12", "1")))
    assert result == [("best", "10", "4"), ("early", "10", "4"), ("late", "10", "2")]


def test_depth_sweeps_levels_best_first_and_forgets_vanished_prices() -> None:
    m = SymbolMatcher("X")
    m.add(order("b", "buy", "102", "7"), now=0)
    update = depth(1, [("99", "1")], [("100", "2"), ("101", "3"), ("102", "1"), ("103", "9")])
    assert fills(m.apply(update)) == [("b", "100", "2"), ("b", "101", "3"), ("b", "102", "1")]
    # 101 vanished inside the shown range: traded through; 100 and 102 are still ours.
    update = depth(2, [("99", "1")], [("100", "2"), ("102", "1"), ("104", "1")])
    assert fills(m.apply(update)) == []
    assert m.ledger("asks") == [(D(100), D(2)), (D(102), D(1))]
    update = depth(3, [("99", "1")], [("100", "2"), ("101", "5"), ("102", "1")])
    assert fills(m.apply(update)) == [("b", "101", "1")]


def test_one_depth_update_fills_several_orders_across_levels() -> None:
    m = SymbolMatcher("X")
    m.add(order("s1", "sell", "98", "3"), now=0)
    m.add(order("s2", "sell", "99", "3"), now=0)
    update = depth(1, [("100", "2"), ("99", "2"), ("98", "5")], [("101", "1")])
    # s1 (limit 98) is the better sell; s2 (limit 99) cannot take the 98 bid.
    assert fills(m.apply(update)) == [("s1", "100", "2"), ("s1", "99", "1"), ("s2", "99", "1")]


def test_an_order_accepted_with_a_known_quote_matches_what_is_left_of_it() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "1"), now=0)
    assert fills(m.apply(ticker(1, "5", "3", "6", "1"))) == [("a", "5", "1")]
    assert fills(m.add(order("b", "sell", "5", "5"), now=0)) == [("b", "5", "2")]
    assert fills(m.add(order("c", "buy", "6", "5"), now=0)) == [("c", "6", "1")]
    m.forget_quote()
    assert fills(m.add(order("d", "buy", "6", "5"), now=0)) == []


def test_only_updates_received_before_expires_at_fill() -> None:
    m = SymbolMatcher("X")
    m.add(order("short", "sell", "5", "1", expires_at=10.0), now=0)
    m.add(order("long", "sell", "5", "1", expires_at=20.0), now=0)
    assert fills(m.apply(ticker(1, "5", "5", "6", "1", at=10.0))) == [("long", "5", "1")]
    assert "short" in m  # the service expires it; the engine only refuses to fill it


def test_exact_decimals_at_the_contract_bounds() -> None:
    m = SymbolMatcher("X")
    m.add(
        order("a", "buy", "99999999999999999999.999999999999999999", "0.000000000000000003"), now=0
    )
    update = ticker(1, "1", "1", "99999999999999999999.999999999999999999", "0.000000000000000001")
    assert fills(m.apply(update)) == [
        ("a", "99999999999999999999.999999999999999999", "1E-18"),
    ]
    assert m.get("a").remaining == D("0.000000000000000002")  # type: ignore[union-attr]


def test_remove_and_filled_orders_leave_the_engine() -> None:
    m = SymbolMatcher("X")
    m.add(order("a", "sell", "5", "1"), now=0)
    m.add(order("b", "sell", "5", "1"), now=0)
    assert m.remove("a") is not None and m.remove("a") is None
    assert fills(m.apply(ticker(1, "5", "9", "6", "1"))) == [("b", "5", "1")]
    assert len(m) == 0


def test_touches_only_orders_that_can_fill() -> None:
    """10,000 resting orders cost what 10 do: the walk stops at the first that cannot fill."""
    touched: list[str] = []

    def matcher_with(resting: int) -> SymbolMatcher:
        m = SymbolMatcher("X")
        for n in range(resting):
            limit = "100" if n < 3 else str(101 + n % 50)
            m.add(order(f"o{n}", "sell", limit, "1"), now=0)
        original = m._fill_one

        def counting(o, *args):  # type: ignore[no-untyped-def]
            touched.append(o.order_id)
            return original(o, *args)

        m._fill_one = counting  # type: ignore[method-assign]
        return m

    for resting in (10, 10_000):
        m = matcher_with(resting)
        touched.clear()
        m.apply(ticker(1, "99", "5", "200", "1"))  # below every limit: nothing can fill
        assert touched == []
        result = m.apply(ticker(2, "100", "3", "200", "1"))  # 3 fill at the best limit
        assert len(result or []) == 3
        assert len(touched) == 3, (resting, len(touched))
