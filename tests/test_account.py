"""The paper account's pure core: fees, balances with locks, positions and P&L, the view.

Worked examples first (the README quotes `test_worked_example`), then hypothesis
properties: balances are conserved and locks are exactly what open orders need, through any
sequence of accepts, fills and ends; positions equal a naive model recomputed with Fraction.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.core.account import (
    AssetBalance,
    BalanceDelta,
    Balances,
    InsufficientBalance,
    NoAskForMarketBuy,
    Position,
    Quote,
    SymbolAssets,
    account_view,
    deltas_on_accept,
    deltas_on_end,
    deltas_on_fill,
    deltas_on_fills,
    guess_assets,
    locked_by,
    market_buy_reserve,
    parse_paper_balances,
)
from app.core.decimals import EXACT, ZERO
from app.core.domain import BookUpdate, OrderStatus, Side
from app.core.fees import FeeAsset, check_fee_rate, fee_for, fee_in_quote
from app.core.order import Order
from app.core.positions import show

D = Decimal
BTCUSDT = SymbolAssets("BTC", "USDT")
RATE = D("0.001")
TOP = D("99999999999999999999.999999999999999999")  # < 10^20, 18 fractional digits


@dataclass
class PaperOrder:
    """The fields locking reads (app.core.order.Order has them, `reserve` aside)."""

    side: Side
    order_size: Decimal
    price: Decimal | None  # None: a market order
    reserve: Decimal | None = None
    filled_qty: Decimal = ZERO
    notional: Decimal = ZERO

    def fill(self, price: Decimal, qty: Decimal) -> None:
        self.filled_qty = EXACT.add(self.filled_qty, qty)
        self.notional = EXACT.add(self.notional, EXACT.multiply(price, qty))


@dataclass(frozen=True)
class SimpleFill:
    price: Decimal
    qty: Decimal
    fee: Decimal = ZERO


def balance(balances: Balances, asset: str) -> tuple[str, str]:
    row = balances.of(asset)
    return show(row.free), show(row.locked)


# -- fees --------------------------------------------------------------------------------


def test_a_buy_pays_its_fee_in_the_base_asset_and_a_sell_in_the_quote_asset() -> None:
    assert fee_for(Side.BUY, D("30000"), D("0.1"), RATE) == (D("0.0001"), FeeAsset.BASE)
    assert fee_for(Side.SELL, D("31200"), D("0.15"), RATE) == (D("4.68"), FeeAsset.QUOTE)
    assert fee_for(Side.SELL, D("31200"), D("0.15"), ZERO) == (ZERO, FeeAsset.QUOTE)
    # valued in the quote asset: a buy's base-asset fee at its fill price
    assert fee_in_quote(Side.BUY, D("29500"), D("0.0001")) == D("2.95")
    assert fee_in_quote(Side.SELL, D("31200"), D("4.68")) == D("4.68")


def test_the_largest_fee_is_exact_in_the_exact_context() -> None:
    """qty, price < 10^20 with 18 places (38 digits each) and a rate < 1 with 18 places
    (18 digits): the product needs 94 digits, EXACT has 100 and traps Inexact."""
    rate = check_fee_rate(D("0.999999999999999999"))
    fee, _ = fee_for(Side.SELL, TOP, TOP, rate)  # would raise Inexact if it rounded
    assert Fraction(fee) == Fraction(TOP) * Fraction(TOP) * Fraction(rate)
    assert len(fee.as_tuple().digits) == 94
    # ...so a context of 93 digits would have had to round it: the bound is real.
    with pytest.raises(Inexact):
        Context(prec=93, traps=[Inexact]).multiply(EXACT.multiply(TOP, TOP), rate)
    buy_fee, _ = fee_for(Side.BUY, TOP, TOP, rate)
    assert Fraction(buy_fee) == Fraction(TOP) * Fraction(rate)
    # the largest market-buy reserve (size × ask × 1.05) is exact too
    reserve = market_buy_reserve("BTCUSDT", TOP, TOP, enforced=True)
    assert Fraction(reserve) == Fraction(TOP) * Fraction(TOP) * Fraction(105, 100)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1", "less than 1"),
        ("-0.001", "at least 0"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("0.0000000000000000001", "at most 18 digits"),
    ],
)
def test_a_fee_rate_that_could_make_a_fee_inexact_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_fee_rate(D(text))


def test_a_fee_rate_is_normalized() -> None:
    assert check_fee_rate(D("0.00100000000000000000000")).as_tuple().exponent == -3
    assert check_fee_rate(D("0")) == ZERO
    assert check_fee_rate(D("0.000000000000000001")) == D("1E-18")


# -- assets and PAPER_BALANCES -------------------------------------------------------------


def test_assets_are_guessed_from_the_symbol_when_exchange_info_is_not_there() -> None:
    assert guess_assets("LTCBTC") == SymbolAssets("LTC", "BTC")
    assert guess_assets("BTCFDUSD") == SymbolAssets("BTC", "FDUSD")
    assert guess_assets("BTCUSDT") == BTCUSDT
    assert guess_assets("USDT") is None and guess_assets("ABCXYZ") is None


def test_a_fee_is_paid_in_the_asset_the_order_receives() -> None:
    assert BTCUSDT.fee_asset(Side.BUY) == "BTC" and BTCUSDT.fee_asset(Side.SELL) == "USDT"


def test_paper_balances_parse_into_exact_amounts_by_upper_case_asset() -> None:
    assert parse_paper_balances("USDT:10000,BTC:0.5") == {"USDT": D(10000), "BTC": D("0.5")}
    assert parse_paper_balances(" usdt : 1 , Btc:0 ") == {"USDT": D(1), "BTC": D(0)}
    assert parse_paper_balances("") is None and parse_paper_balances("  ") is None


@pytest.mark.parametrize(
    ("text", "entry", "why"),
    [
        ("USDT=5", 'entry 1 "USDT=5"', "ASSET:amount"),
        ("USDT:1,BTC", 'entry 2 "BTC"', "ASSET:amount"),
        ("USDT:1,", 'entry 2 ""', "ASSET:amount"),
        (":5", 'entry 1 ":5"', "asset must be"),
        ("US-DT:5", 'entry 1 "US-DT:5"', "asset must be"),
        ("USDT:abc", 'entry 1 "USDT:abc"', "decimal number"),
        ("USDT:-1", 'entry 1 "USDT:-1"', "decimal number"),
        ("USDT:1e3", 'entry 1 "USDT:1e3"', "decimal number"),
        ("USDT:100000000000000000000", 'entry 1 "USDT:', "less than 10\\^20"),
        ("BTC:0.0000000000000000001", 'entry 1 "BTC:', "at most 18 digits"),
        ("USDT:1,usdt:2", 'entry 2 "usdt:2"', "USDT is given twice"),
    ],
)
def test_a_bad_paper_balances_entry_is_named(text: str, entry: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        parse_paper_balances(text)
    assert str(caught.value).startswith(entry)


def test_an_owner_starts_with_the_spec_free_and_enforced_only_with_a_spec() -> None:
    opening = Balances.opening(parse_paper_balances("USDT:10000,BTC:0.5"))
    assert opening.enforced
    assert opening.rows() == {"BTC": AssetBalance(D("0.5")), "USDT": AssetBalance(D(10000))}
    unchecked = Balances.opening(parse_paper_balances(""))
    assert not unchecked.enforced and unchecked.rows() == {}


# -- locks ---------------------------------------------------------------------------------


def test_a_limit_buy_locks_size_times_limit_of_the_quote_asset() -> None:
    balances = Balances.opening({"USDT": D(1000)})
    order = PaperOrder(Side.BUY, D("0.02"), D(30000))
    deltas = deltas_on_accept(order, BTCUSDT)
    assert deltas == [BalanceDelta("USDT", D(-600), D(600))]
    balances.check(deltas)
    balances.apply(deltas)
    assert balance(balances, "USDT") == ("400", "600")
    assert balance(balances, "BTC") == ("0", "0")


def test_a_sell_locks_its_size_of_the_base_asset() -> None:
    limit = PaperOrder(Side.SELL, D("0.3"), D(30000))
    market = PaperOrder(Side.SELL, D("0.3"), None)
    for order in (limit, market):
        assert deltas_on_accept(order, BTCUSDT) == [BalanceDelta("BTC", D("-0.3"), D("0.3"))]


def test_an_order_whose_lock_is_not_free_is_refused_naming_asset_needed_and_free() -> None:
    balances = Balances.opening({"USDT": D(1000), "BTC": D("0.1")})
    with pytest.raises(InsufficientBalance) as caught:
        balances.check(deltas_on_accept(PaperOrder(Side.BUY, D(1), D("1000.5")), BTCUSDT))
    assert (caught.value.asset, caught.value.needed, caught.value.free) == (
        "USDT", D("1000.5"), D(1000),
    )  # fmt: skip
    assert str(caught.value) == "insufficient USDT balance: needs 1000.5, 1000 free"
    with pytest.raises(InsufficientBalance, match=re.escape("BTC balance: needs 0.2, 0.1 free")):
        balances.check(deltas_on_accept(PaperOrder(Side.SELL, D("0.2"), D(1)), BTCUSDT))
    never_had = deltas_on_accept(PaperOrder(Side.SELL, D("0.5"), D(1)), SymbolAssets("ETH", "X"))
    with pytest.raises(InsufficientBalance, match=re.escape("ETH balance: needs 0.5, 0 free")):
        balances.check(never_had)
    balances.check(deltas_on_accept(PaperOrder(Side.BUY, D(1), D(1000)), BTCUSDT))  # exactly


def test_without_a_spec_nothing_is_refused_and_free_goes_negative() -> None:
    balances = Balances.opening(None)
    deltas = deltas_on_accept(PaperOrder(Side.BUY, D(2), D(50)), BTCUSDT)
    balances.check(deltas)
    balances.apply(deltas)
    assert balance(balances, "USDT") == ("-100", "100")


def test_a_market_buy_locks_size_times_best_ask_times_1_05() -> None:
    reserve = market_buy_reserve("BTCUSDT", D("0.5"), D(20000), enforced=True)
    assert reserve == D(10500)
    order = PaperOrder(Side.BUY, D("0.5"), None, reserve=reserve)
    assert deltas_on_accept(order, BTCUSDT) == [BalanceDelta("USDT", D(-10500), D(10500))]
    with pytest.raises(InsufficientBalance, match=re.escape("needs 10500, 10499.99 free")):
        Balances.opening({"USDT": D("10499.99")}).check(deltas_on_accept(order, BTCUSDT))


def test_a_market_buy_with_no_known_ask_is_refused_only_when_enforced() -> None:
    with pytest.raises(NoAskForMarketBuy, match="no ask is known for BTCUSDT"):
        market_buy_reserve("BTCUSDT", D(1), None, enforced=True)
    reserve = market_buy_reserve("BTCUSDT", D(1), None, enforced=False)
    assert reserve == ZERO  # locks nothing: its fills are paid from free
    order = PaperOrder(Side.BUY, D(1), None, reserve=reserve)
    assert deltas_on_accept(order, BTCUSDT) == []
    assert deltas_on_fill(order, SimpleFill(D(100), D(1)), ZERO, BTCUSDT) == [
        BalanceDelta("BTC", D(1)), BalanceDelta("USDT", D(-100)),
    ]  # fmt: skip


def test_a_market_buy_without_its_reserve_set_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="reserve"):
        deltas_on_accept(PaperOrder(Side.BUY, D(1), None), BTCUSDT)


def test_a_fill_at_a_better_price_frees_the_difference_at_once() -> None:
    order = PaperOrder(Side.BUY, D(2), D(100))  # locks 200
    deltas = deltas_on_fill(order, SimpleFill(D(90), D(1)), D("0.001"), BTCUSDT)
    # the lock falls by 1 × 100 (the remaining 1 still needs 100); 90 paid, 10 freed
    assert deltas == [BalanceDelta("BTC", D("0.999")), BalanceDelta("USDT", D(10), D(-100))]


def test_a_sell_fill_pays_base_from_its_lock_and_receives_quote_less_the_fee() -> None:
    order = PaperOrder(Side.SELL, D(2), D(100))
    deltas = deltas_on_fill(order, SimpleFill(D(110), D("0.5")), D("0.055"), BTCUSDT)
    assert deltas == [BalanceDelta("BTC", ZERO, D("-0.5")), BalanceDelta("USDT", D("54.945"))]


def test_a_market_buy_pays_its_fills_from_the_reserve_and_the_excess_from_free() -> None:
    order = PaperOrder(Side.BUY, D(2), None, reserve=D(210))  # 2 × ask 100 × 1.05
    first = deltas_on_fill(order, SimpleFill(D(100), D(1)), ZERO, BTCUSDT)
    assert first == [BalanceDelta("BTC", D(1)), BalanceDelta("USDT", ZERO, D(-100))]
    order.fill(D(100), D(1))
    assert locked_by(order, BTCUSDT).amount == D(110)
    # the book moved: the last unit costs 130, 110 from the lock and 20 from free
    second = deltas_on_fill(order, SimpleFill(D(130), D(1)), ZERO, BTCUSDT)
    assert second == [BalanceDelta("BTC", D(1)), BalanceDelta("USDT", D(-20), D(-110))]
    order.fill(D(130), D(1))
    assert locked_by(order, BTCUSDT).amount == ZERO  # never negative
    assert deltas_on_end(order, BTCUSDT) == []


def test_what_is_left_of_the_reserve_is_released_when_a_market_buy_ends() -> None:
    order = PaperOrder(Side.BUY, D(2), None, reserve=D(210))
    order.fill(D(95), D(1))  # IOC: the rest expires
    assert deltas_on_end(order, BTCUSDT) == [BalanceDelta("USDT", D(115), D(-115))]


def test_an_ending_order_releases_what_its_remaining_size_locks() -> None:
    buy = PaperOrder(Side.BUY, D(3), D(10))
    buy.fill(D(9), D(1))
    assert deltas_on_end(buy, BTCUSDT) == [BalanceDelta("USDT", D(20), D(-20))]
    sell = PaperOrder(Side.SELL, D(3), D(10))
    sell.fill(D(11), D("2.5"))
    assert deltas_on_end(sell, BTCUSDT) == [BalanceDelta("BTC", D("0.5"), D("-0.5"))]


def test_several_fills_at_once_move_what_each_fill_does_merged_per_asset() -> None:
    order = PaperOrder(Side.BUY, D(5), D(100))
    fills = [SimpleFill(D(98), D(1), D("0.001")), SimpleFill(D(99), D(2), D("0.002"))]
    one_by_one: list[BalanceDelta] = []
    for fill in fills:
        one_by_one += deltas_on_fill(order, fill, fill.fee, BTCUSDT)
        order.fill(fill.price, fill.qty)
    balances = Balances(enforced=False)
    balances.apply(one_by_one)
    batched = deltas_on_fills(order, fills, BTCUSDT)  # from the order as it is after them
    assert batched == [
        BalanceDelta("BTC", D("2.997")), BalanceDelta("USDT", D(4), D(-300)),
    ]  # fmt: skip
    assert {d.asset: (d.free, d.locked) for d in batched} == {
        asset: (row.free, row.locked) for asset, row in balances.rows().items()
    }


def test_a_fill_beyond_the_order_size_is_refused() -> None:
    order = PaperOrder(Side.SELL, D(1), D(10), filled_qty=D("0.5"))
    with pytest.raises(ValueError, match="over-fills"):
        deltas_on_fill(order, SimpleFill(D(10), D("0.6")), ZERO, BTCUSDT)


def test_the_service_order_object_locks_like_any_limit_order() -> None:
    order = Order(
        order_id="o", owner="alice", client_order_id=None, symbol="BTCUSDT", side=Side.BUY,
        order_size=D(2), price=D(100), timeout_s=30.0, status=OrderStatus.OPEN,
        created_at_us=1, updated_at_us=1, expires_at_us=9,
    )  # fmt: skip
    assert deltas_on_accept(order, BTCUSDT) == [BalanceDelta("USDT", D(-200), D(200))]
    fill = order.record_fill(1, D(90), D(1), 2)
    assert deltas_on_fills(order, [SimpleFill(fill.price, fill.qty)], BTCUSDT) == [
        BalanceDelta("BTC", D(1)), BalanceDelta("USDT", D(10), D(-100)),
    ]  # fmt: skip
    order.finish(OrderStatus.CANCELLED, "cancelled", 3)
    assert deltas_on_end(order, BTCUSDT) == [BalanceDelta("USDT", D(100), D(-100))]


# -- positions -----------------------------------------------------------------------------


def test_a_non_terminating_average_is_shown_rounded_half_even_to_18_places() -> None:
    position = Position("BTCUSDT")
    position.apply_fill(Side.BUY, D(1), D(1), ZERO)
    position.apply_fill(Side.BUY, D(2), D(2), ZERO)
    assert position.avg_entry == Fraction(5, 3)  # kept exact
    view = position.view(None)
    assert view["avg_entry_price"] == "1.666666666666666667"
    assert view["unrealized_pnl"] is None  # no quote
    position.apply_fill(Side.SELL, D(2), D(1), ZERO)  # realizes 1 × (2 - 5/3) = 1/3
    assert position.realized_pnl == Fraction(1, 3)
    assert position.view(None)["realized_pnl"] == "0.333333333333333333"
    position.apply_fill(Side.SELL, D(2), D(2), ZERO)  # flat: 3 × 2 - 5, exactly
    assert position.realized_pnl == 1 and position.view(None)["realized_pnl"] == "1"


def test_show_is_exact_when_the_value_terminates_and_rounds_negatives_symmetrically() -> None:
    assert show(Fraction(1, 2**70)) == format(EXACT.divide(D(1), D(2**70)), "f")  # 70 places, exact
    assert show(Fraction(-5, 3)) == "-1.666666666666666667"
    assert show(Fraction(2, 3) * Fraction(1, 10**18)) == "0.000000000000000001"
    assert show(Fraction(1, 3) * Fraction(1, 10**18)) == "0"
    assert show(Fraction(-1, 3) * Fraction(1, 10**18)) == "0"
    assert show(D("-0")) == "0" and show(D("1.500")) == "1.5" and show(D("1E+3")) == "1000"


def test_a_flat_position_has_no_average_and_zero_unrealized() -> None:
    position = Position("BTCUSDT")
    position.apply_fill(Side.BUY, D(10), D(1), D("0.001"))
    position.apply_fill(Side.SELL, D(12), D(1), D("0.012"))
    assert position.view(Quote(D(11), D(13))) == {
        "symbol": "BTCUSDT", "qty": "0", "avg_entry_price": None, "realized_pnl": "2",
        "unrealized_pnl": "0", "fees": "0.022",
    }  # fmt: skip


def test_a_short_is_marked_against_the_ask_and_a_long_against_the_bid() -> None:
    short = Position("BTCUSDT")
    short.apply_fill(Side.SELL, D(100), D(2), ZERO)
    assert short.qty == -2 and short.avg_entry == 100
    assert short.unrealized_pnl(Quote(D(90), D(95))) == 10  # buying back at 95
    assert short.unrealized_pnl(Quote(D(90), None)) is None
    long = Position("BTCUSDT")
    long.apply_fill(Side.BUY, D(100), D(2), ZERO)
    assert long.unrealized_pnl(Quote(D(90), D(95))) == -20  # selling at 90
    assert long.unrealized_pnl(Quote(None, D(95))) is None


def test_a_fill_through_zero_closes_at_the_average_and_opens_at_its_price() -> None:
    position = Position("BTCUSDT")
    position.apply_fill(Side.BUY, D(100), D(1), ZERO)
    position.apply_fill(Side.BUY, D(110), D(1), ZERO)  # 2 at 105
    position.apply_fill(Side.SELL, D(120), D(5), ZERO)  # closes 2 (+30), opens 3 short at 120
    assert (position.qty, position.avg_entry, position.realized_pnl) == (-3, 120, 30)
    position.apply_fill(Side.BUY, D(100), D(4), ZERO)  # closes 3 (+60), opens 1 long at 100
    assert (position.qty, position.avg_entry, position.realized_pnl) == (1, 100, 90)


def test_a_position_round_trips_through_its_stored_row_exactly() -> None:
    position = Position("BTCUSDT")
    for side, price, qty in [(Side.BUY, "1", "1"), (Side.BUY, "2", "2"), (Side.SELL, "3", "1")]:
        position.apply_fill(side, D(price), D(qty), D("0.001"))
    row = position.to_row()
    assert row.avg_entry == "5/3" and not row.avg_rounded
    again = Position.from_row("BTCUSDT", row)
    assert again == position
    again.apply_fill(Side.SELL, D(2), D(2), ZERO)
    assert again.realized_pnl == (3 - Fraction(5, 3)) + 2 * (2 - Fraction(5, 3)) == 2


def test_a_long_open_position_stays_bounded_and_shows_what_the_exact_one_shows() -> None:
    """Adding after partial closes, never flat: the exact average's denominator grows
    without end; the kept one stops at 10^100, invisible at 18 places, and going flat
    makes the realized P&L exact again."""
    rng = random.Random(13)
    fills = []
    for _ in range(600):
        side = Side.BUY if rng.random() < 0.6 else Side.SELL
        price, qty = D(rng.randint(2_000_000, 3_000_000)) / 100, D(rng.randint(1, 999)) / 1000
        fills.append((side, price, qty, ZERO))
    position = Position("XQ")
    naive = NaivePosition()
    for side, price, qty, fee in fills:
        position.apply_fill(side, price, qty, fee)
        naive = naive_step(naive, side, price, qty, fee)
        assert naive.qty != 0  # never flat: the hard case
        assert position.avg_entry is not None and position.avg_entry.denominator <= 10**100
    assert naive.avg is not None and naive.avg.denominator > 10**300  # the bound was needed
    assert position.avg_entry is not None and position.avg_rounded
    assert Position.from_row("XQ", position.to_row()) == position
    assert abs(position.avg_entry - naive.avg) < Fraction(1, 10**90)
    assert abs(position.realized_pnl - naive.realized) < Fraction(1, 10**80)
    quote = Quote(D("25000.01"), D("25000.02"))
    assert position.view(quote) == {
        "symbol": "XQ", "qty": show(D(naive.qty.numerator) / naive.qty.denominator),
        "avg_entry_price": show(naive.avg), "realized_pnl": show(naive.realized),
        "unrealized_pnl": show((Fraction(quote.bid) - naive.avg) * naive.qty), "fees": "0",
    }  # fmt: skip
    side = Side.SELL if naive.qty > 0 else Side.BUY
    flat_qty = abs(position.qty)
    position.apply_fill(side, D(25000), flat_qty, ZERO)
    naive = naive_step(naive, side, D(25000), flat_qty, ZERO)
    assert position.qty == 0 and position.realized_pnl == naive.realized  # exact again
    assert not position.avg_rounded


def test_a_quote_is_the_top_of_a_book_update() -> None:
    update = BookUpdate("BTCUSDT", 1, ((D(10), D(1)), (D(9), D(1))), ((D(11), D(2)),), 0.0)
    assert Quote.of(update) == Quote(D(10), D(11))
    assert Quote.of(BookUpdate("BTCUSDT", 2, (), (), 0.0)) == Quote(None, None)


# -- the worked example (README) -----------------------------------------------------------


def test_worked_example() -> None:
    """PAPER_BALANCES=USDT:10000, FEE_RATE=0.001, one owner trading BTCUSDT."""
    balances = Balances.opening(parse_paper_balances("USDT:10000"))
    position = Position("BTCUSDT")

    def fill(order: PaperOrder, price: str, qty: str) -> Decimal:
        fee, _ = fee_for(order.side, D(price), D(qty), RATE)
        balances.apply(deltas_on_fill(order, SimpleFill(D(price), D(qty)), fee, BTCUSDT))
        position.apply_fill(order.side, D(price), D(qty), fee)
        order.fill(D(price), D(qty))
        return fee

    # 1. buy 0.2 at limit 30000: locks 0.2 × 30000 = 6000 USDT
    buy = PaperOrder(Side.BUY, D("0.2"), D(30000))
    accepted = deltas_on_accept(buy, BTCUSDT)
    balances.check(accepted)
    balances.apply(accepted)
    assert balance(balances, "USDT") == ("4000", "6000")
    # 2. fills 0.1 at 29500: pays 2950 from the lock, which falls to 0.1 × 30000 = 3000,
    #    so 50 is freed at once; receives 0.1 BTC less the fee 0.1 × 0.001 = 0.0001 BTC
    assert fill(buy, "29500", "0.1") == D("0.0001")
    assert balance(balances, "USDT") == ("4050", "3000")
    assert balance(balances, "BTC") == ("0.0999", "0")
    # 3. fills 0.1 at 30000: pays the last 3000 of the lock; filled, nothing left to release
    assert fill(buy, "30000", "0.1") == D("0.0001")
    assert deltas_on_end(buy, BTCUSDT) == []
    assert balance(balances, "USDT") == ("4050", "0")
    assert balance(balances, "BTC") == ("0.1998", "0")
    # 4. sell 0.15 at limit 31000: locks 0.15 BTC
    sell = PaperOrder(Side.SELL, D("0.15"), D(31000))
    balances.apply(deltas_on_accept(sell, BTCUSDT))
    assert balance(balances, "BTC") == ("0.0498", "0.15")
    # 5. fills 0.15 at 31200: receives 4680 USDT less the fee 4680 × 0.001 = 4.68 USDT
    assert fill(sell, "31200", "0.15") == D("4.68")

    # position: 0.2 bought at an average (2950 + 3000) / 0.2 = 29750, 0.15 sold at 31200:
    # realized 0.15 × (31200 - 29750) = 217.5; fees 0.0001 × 29500 + 0.0001 × 30000 + 4.68
    # = 10.63 USDT; the 0.05 left is marked at the bid: 0.05 × (31100 - 29750) = 67.5
    view = account_view(balances, [position], {"BTCUSDT": Quote(D(31100), D(31101))})
    assert view == {
        "balances": [
            {"asset": "BTC", "free": "0.0498", "locked": "0"},
            {"asset": "USDT", "free": "8725.32", "locked": "0"},
        ],
        "positions": [
            {
                "symbol": "BTCUSDT", "qty": "0.05", "avg_entry_price": "29750",
                "realized_pnl": "217.5", "unrealized_pnl": "67.5", "fees": "10.63",
            },
        ],
    }  # fmt: skip


def test_the_view_lists_balances_by_asset_and_positions_by_symbol() -> None:
    balances = Balances({"ZZZ": AssetBalance(D(1)), "AAA": AssetBalance(D(2))}, enforced=False)
    later, earlier = Position("XRPUSDT"), Position("ADAUSDT")
    view = account_view(balances, [later, earlier], {})
    assert [row["asset"] for row in view["balances"]] == ["AAA", "ZZZ"]
    assert [row["symbol"] for row in view["positions"]] == ["ADAUSDT", "XRPUSDT"]
    assert account_view(Balances(enforced=True), [], {}) == {"balances": [], "positions": []}


# -- property: balances are conserved and locks are what the open orders need -------------

ASSETS = {"XQ": SymbolAssets("X", "Q"), "YQ": SymbolAssets("Y", "Q")}
PRICE = st.decimals(min_value="0.01", max_value="50", places=2)
SIZE = st.decimals(min_value="0.001", max_value="5", places=3)

Step = tuple  # ("accept", symbol, side, market, size, price, ask) | ("fill", pick, qty,
#               price, step) | ("end", pick)

ACCEPT = st.tuples(
    st.just("accept"),
    st.sampled_from(sorted(ASSETS)),
    st.sampled_from(list(Side)),
    st.booleans(),
    SIZE,
    PRICE,
    st.one_of(st.none(), PRICE),
)
FILL_STEP = st.tuples(
    st.just("fill"),
    st.integers(0, 50),
    SIZE,
    PRICE,
    st.sampled_from([D(0), D("0.01"), D("0.5"), D(3)]),
)
END = st.tuples(st.just("end"), st.integers(0, 50))
STEP = st.one_of(ACCEPT, ACCEPT, FILL_STEP, FILL_STEP, END)  # orders pile up, then end


@dataclass
class Open:
    order: PaperOrder
    assets: SymbolAssets


def expected_lock(order: PaperOrder) -> Decimal:
    """What an open order needs, spelled out independently of locked_by."""
    remaining = order.order_size - order.filled_qty
    if order.side is Side.SELL:
        return remaining
    if order.price is not None:
        return remaining * order.price
    assert order.reserve is not None
    return max(ZERO, order.reserve - order.notional)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(STEP, min_size=10, max_size=80),
    enforced=st.booleans(),
    start=st.tuples(*[st.sampled_from([D(0), D("2.5"), D(50), D(1000)])] * 3),
    rate=st.sampled_from([ZERO, D("0.001"), D("0.00075"), D("0.1")]),
)
def test_balances_are_conserved_and_lock_what_open_orders_need(
    steps: list[Step], enforced: bool, start: tuple[Decimal, Decimal, Decimal], rate: Decimal
) -> None:
    opening = dict(zip(("Q", "X", "Y"), start, strict=True))
    balances = Balances({a: AssetBalance(v) for a, v in opening.items()}, enforced=enforced)
    flows: dict[str, Decimal] = defaultdict(Decimal)  # received - paid - fees, per asset
    open_orders: list[Open] = []
    overspent = False  # a market buy paid more than its reserve: free may go below 0

    for step in steps:
        if step[0] == "accept":
            _, symbol, side, market, size, price, ask = step
            assets = ASSETS[symbol]
            order = PaperOrder(side, size, None if market else price)
            if market and side is Side.BUY:
                try:
                    order.reserve = market_buy_reserve(symbol, size, ask, enforced=enforced)
                except NoAskForMarketBuy:
                    assert enforced and ask is None
                    continue
            deltas = deltas_on_accept(order, assets)
            need = expected_lock(order)
            lock_asset = assets.base if side is Side.SELL else assets.quote
            free = balances.of(lock_asset).free
            try:
                balances.check(deltas)
            except InsufficientBalance as refused:
                assert enforced and free < need
                assert (refused.asset, refused.needed, refused.free) == (lock_asset, need, free)
                event("an order refused")
                continue
            assert not enforced or free >= need
            balances.apply(deltas)
            open_orders.append(Open(order, assets))
        elif step[0] == "fill" and open_orders:
            _, pick, qty, price, step_away = step
            held = open_orders[pick % len(open_orders)]
            order, assets = held.order, held.assets
            qty = min(qty, order.order_size - order.filled_qty)
            if order.price is not None:  # never worse than the limit
                better = order.price + (-step_away if order.side is Side.BUY else step_away)
                price = better if better > 0 else order.price
            elif order.side is Side.BUY and price * qty > expected_lock(order):
                overspent = True
                event("a market buy paid beyond its reserve")
            fee, _ = fee_for(order.side, price, qty, rate)
            deltas = deltas_on_fill(order, SimpleFill(price, qty), fee, assets)
            order.fill(price, qty)
            assert deltas == deltas_on_fills(order, [SimpleFill(price, qty, fee)], assets)
            balances.apply(deltas)
            cost = price * qty
            if order.side is Side.BUY:
                flows[assets.quote] -= cost
                flows[assets.base] += qty - fee
            else:
                flows[assets.base] -= qty
                flows[assets.quote] += cost - fee
            if order.filled_qty == order.order_size:
                balances.apply(deltas_on_end(order, assets))
                open_orders.remove(held)
        elif step[0] == "end" and open_orders:
            held = open_orders.pop(step[1] % len(open_orders))
            balances.apply(deltas_on_end(held.order, held.assets))

        for asset, start_amount in opening.items():
            row = balances.of(asset)
            assert row.free + row.locked == start_amount + flows[asset]
            needs = sum(
                (expected_lock(o.order) for o in open_orders
                 if asset == (o.assets.base if o.order.side is Side.SELL else o.assets.quote)),
                ZERO,
            )  # fmt: skip
            assert row.locked == needs >= 0
            if enforced and not overspent:
                assert row.free >= 0

    event(f"{len(open_orders)} open orders at the end")
    for held in open_orders:
        balances.apply(deltas_on_end(held.order, held.assets))
    for asset, start_amount in opening.items():
        assert balances.of(asset).locked == 0
        assert balances.of(asset).free == start_amount + flows[asset]


# -- property: positions equal a naive model recomputed from every fill with Fraction ----


@dataclass
class NaivePosition:
    qty: Fraction = Fraction(0)
    avg: Fraction | None = None
    realized: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)


def naive_step(
    state: NaivePosition, side: Side, price: Decimal, qty: Decimal, fee: Decimal
) -> NaivePosition:
    """Average cost the textbook way: close at the average, open at the price."""
    p, q = Fraction(price), Fraction(qty)
    fees = state.fees + (Fraction(fee) * p if side is Side.BUY else Fraction(fee))
    direction = 1 if side is Side.BUY else -1
    if state.qty == 0 or (state.qty > 0) == (direction > 0):
        held = abs(state.qty)
        avg = ((state.avg or 0) * held + p * q) / (held + q)
        return NaivePosition(state.qty + direction * q, avg, state.realized, fees)
    assert state.avg is not None
    closed = min(q, abs(state.qty))
    long_sign = 1 if state.qty > 0 else -1
    realized = state.realized + closed * (p - state.avg) * long_sign
    new_qty = state.qty + direction * q
    avg: Fraction | None = state.avg
    if new_qty == 0:
        avg = None
    elif q > closed:
        avg = p
    return NaivePosition(new_qty, avg, realized, fees)


def naive_position(fills: list[tuple[Side, Decimal, Decimal, Decimal]]) -> NaivePosition:
    """Recomputed from scratch over every fill."""
    state = NaivePosition()
    for fill in fills:
        state = naive_step(state, *fill)
    return state


FILL = st.tuples(
    st.sampled_from(list(Side)),
    st.one_of(st.sampled_from([D(1), D(2), D(3), D(7)]), PRICE),
    st.one_of(st.sampled_from([D(1), D(2), D(3)]), SIZE),
    st.sampled_from([ZERO, D("0.001"), D("0.0003")]),
)


@settings(max_examples=300, deadline=None)
@given(fills=st.lists(FILL, min_size=1, max_size=40), bid=PRICE, ask=PRICE)
def test_positions_equal_a_naive_fraction_model(
    fills: list[tuple[Side, Decimal, Decimal, Decimal]], bid: Decimal, ask: Decimal
) -> None:
    position = Position("XQ")
    naive = NaivePosition()
    for count, (side, price, qty, fee) in enumerate(fills, start=1):
        position.apply_fill(side, price, qty, fee)
        before, naive = naive, naive_position(fills[:count])
        if before.qty * naive.qty < 0:
            event("a fill went through zero")
        assert Fraction(position.qty) == naive.qty
        assert position.avg_entry == naive.avg
        assert position.realized_pnl == naive.realized
        assert Fraction(position.fees) == naive.fees
        if position.avg_entry is not None and position.avg_entry.denominator % 3 == 0:
            event("a non-terminating average")
        if count % 7 == 0:  # as a store would: persist, reload, go on
            position = Position.from_row("XQ", position.to_row())
    unrealized = position.unrealized_pnl(Quote(bid, ask))
    if naive.avg is None:
        assert unrealized == 0
    else:
        mark = bid if naive.qty > 0 else ask
        assert unrealized == (Fraction(mark) - naive.avg) * naive.qty
