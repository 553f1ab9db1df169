"""Property tests: the engine against the naive reference model, plus invariants.

Random scripts of adds, updates (bookTicker, depth or both), removes and quote losses,
on a small price grid so that levels, limits and ledger entries collide. After every
step the engine's executions must equal the model's exactly, and:

- no order is ever filled beyond its size, and what rests has exactly size - filled left;
- no fill is at a price worse than the order's limit, nor at a price the quote did not show;
- from the moment an update is applied until the next one (its own fills plus those of
  orders accepted against it), no more is taken from a shown level S than
  S - min(taken, S), taken being the ledger entry before the update;
- only updates received before expires_at fill; the engine's ledgers equal the model's;
- an IOC/FOK order (market orders included) meets exactly one quote and then leaves:
  a FOK fills wholly or not at all, and the engine ends the same orders as the model.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Context, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.domain import BookUpdate, Side, TimeInForce
from app.core.matching import RestingOrder, SymbolMatcher, engine_limit
from tests.reference_model import ReferenceModel

_EXACT = Context(prec=100)
NEVER = 1e18

SMALL_PRICES = [Decimal(p) / 2 for p in range(18, 24)]  # 9.0 .. 11.5
SMALL_QTY = st.one_of(
    st.sampled_from([Decimal(q) for q in ("0.5", "1", "1.5", "2", "3.25", "0")]),
    st.decimals(min_value="0.001", max_value="5", places=3),
    st.decimals(min_value="0.00000001", max_value="1", places=8),
)
SMALL_SIZE = st.one_of(
    st.decimals(min_value="0.001", max_value="5", places=3),
    st.sampled_from([Decimal("1"), Decimal("2.5"), Decimal(100)]),
)

TOP = Decimal("99999999999999999999.999999999999999999")  # < 10^20, 18 fractional digits
ATOM = Decimal("0.000000000000000001")
BIG_PRICES = [_EXACT.subtract(TOP, _EXACT.multiply(ATOM, Decimal(k))) for k in range(6)]
BIG_QTY = st.one_of(
    st.sampled_from([ATOM, 2 * ATOM, 5 * ATOM, TOP]),
    st.decimals(min_value=ATOM, max_value=TOP, places=18),
)
BIG_SIZE = BIG_QTY.filter(bool)

TIMES = [0.0, 5.0, 10.0]
# GTT most of the time; "market" is an IOC without a limit.
TIME_IN_FORCE = ["GTT", "GTT", "GTT", "IOC", "FOK", "market"]
EXPIRIES = [5.0, 10.0, NEVER, NEVER]

Step = tuple  # ("add", id, side, limit, size, expires_at, now, tif) | ("update", BookUpdate)
#               | ("remove", id) | ("forget",)


@st.composite
def book_side(
    draw: st.DrawFn, prices: list[Decimal], qty: st.SearchStrategy[Decimal], *,
    bids: bool, many: bool,
) -> tuple[tuple[Decimal, Decimal], ...]:  # fmt: skip
    count = draw(st.integers(0 if many else 1, 4 if many else 1))
    chosen = draw(st.sets(st.sampled_from(prices), min_size=count, max_size=count))
    return tuple((price, draw(qty)) for price in sorted(chosen, reverse=bids))


@st.composite
def scripts(draw: st.DrawFn, mode: str, big: bool = False) -> list[Step]:
    prices = BIG_PRICES if big else SMALL_PRICES
    qty = BIG_QTY if big else SMALL_QTY
    size = BIG_SIZE if big else SMALL_SIZE
    steps: list[Step] = []
    update_id = 0
    orders = 0
    last: BookUpdate | None = None
    kinds = ["add", "add", "update", "update", "update", "repeat", "remove", "forget"]
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(kinds))
        if kind == "add":
            orders += 1
            side = draw(st.sampled_from(["buy", "sell"]))
            tif = draw(st.sampled_from(TIME_IN_FORCE))
            limit = draw(st.sampled_from(prices))
            if tif == "market":
                tif, limit = "IOC", engine_limit(Side(side), None)
            steps.append((
                "add", f"o{orders}", side, limit, draw(size),
                draw(st.sampled_from(EXPIRIES)), draw(st.sampled_from(TIMES)), tif,
            ))  # fmt: skip
        elif kind == "update" or (kind == "repeat" and last is not None):
            update_id += draw(st.sampled_from([-1, 0, 1, 1, 1, 2]))  # some stale ones
            received_at = draw(st.sampled_from(TIMES))
            if kind == "repeat" and last is not None:
                # The same book again, or with one level's quantity changed: repeats,
                # growth and shrinks of levels we have taken from.
                bids, asks = list(last.bids), list(last.asks)
                side = draw(st.sampled_from([bids, asks]))
                if side and draw(st.booleans()):
                    index = draw(st.integers(0, len(side) - 1))
                    side[index] = (side[index][0], draw(qty))
                update = BookUpdate("X", update_id, tuple(bids), tuple(asks), received_at,
                                    full_depth=last.full_depth)  # fmt: skip
            else:
                depth = mode == "depth" or (mode == "mixed" and draw(st.booleans()))
                update = BookUpdate(
                    "X", update_id,
                    draw(book_side(prices, qty, bids=True, many=depth)),
                    draw(book_side(prices, qty, bids=False, many=depth)),
                    received_at, full_depth=depth,
                )  # fmt: skip
            last = update
            steps.append(("update", update))
        elif kind == "remove" and orders:
            steps.append(("remove", f"o{draw(st.integers(1, orders))}"))
        elif kind == "forget":
            steps.append(("forget",))
    return steps


def run_both(script: list[Step]) -> None:
    engine, model = SymbolMatcher("X"), ReferenceModel()
    placed: dict[str, tuple[str, Decimal, Decimal, float]] = {}  # side, limit, size, expiry
    filled: dict[str, Decimal] = defaultdict(Decimal)
    removed: set[str] = set()
    ended: set[str] = set()
    met_a_quote: set[str] = set()  # IOC/FOK orders that have met their quote
    tifs: dict[str, str] = {}
    highest_id: int | None = None
    quote: BookUpdate | None = None
    budget: dict[tuple[str, Decimal], Decimal] = {}  # what the quote may still give

    for step in script:
        if step[0] == "add":
            _, order_id, side, limit, size, expires_at, now, tif = step
            placed[order_id] = (side, limit, size, expires_at)
            tifs[order_id] = tif
            resting = RestingOrder(order_id, Side(side), limit, size, expires_at, TimeInForce(tif))
            got = engine.add(resting, now=now)
            want = model.add(order_id, side, limit, size, expires_at, now=now, tif=tif)
            if got:
                assert quote is not None, "filled on acceptance with no quote known"
                assert now < expires_at and quote.received_at < expires_at
            if tif != "GTT" and quote is not None:
                met_a_quote.add(order_id)
        elif step[0] == "update":
            update = step[1]
            stale = highest_id is not None and update.update_id <= highest_id
            before = {"asks": dict(engine.ledger("asks")), "bids": dict(engine.ledger("bids"))}
            got = engine.apply(update)
            want = model.apply(update)
            assert (got is None) == stale
            if got is not None:
                highest_id, quote = update.update_id, update
                budget = {}
                for book, levels in (("asks", update.asks), ("bids", update.bids)):
                    for price, shown in levels:
                        taken = min(before[book].get(price, Decimal(0)), shown)
                        budget[(book, price)] = _EXACT.subtract(shown, taken)
                for e in got:
                    assert update.received_at < placed[e.order_id][3], "filled after expiry"
                    assert e.order_id not in met_a_quote, "an IOC/FOK filled on a second quote"
                met_a_quote.update(i for i, t in tifs.items() if t != "GTT" and i in placed)
        elif step[0] == "remove":
            engine.remove(step[1])
            model.remove(step[1])
            removed.add(step[1])
            got, want = [], []
        else:
            engine.forget_quote()
            model.forget_quote()
            quote, budget = None, {}
            got, want = [], []

        assert engine.quote is quote
        got_tuples = (
            None if got is None else [(e.order_id, e.update_id, e.price, e.qty) for e in got]
        )
        assert got_tuples == want
        for order_id, update_id, price, qty in got_tuples or []:
            side, limit, size, _ = placed[order_id]
            assert quote is not None and update_id == quote.update_id
            assert qty > 0
            assert price <= limit if side == "buy" else price >= limit  # never worse
            book = "asks" if side == "buy" else "bids"
            assert (book, price) in budget, "filled at a price the quote did not show"
            budget[(book, price)] = _EXACT.subtract(budget[(book, price)], qty)
            assert budget[(book, price)] >= 0, "took more than the level offered"
            filled[order_id] = _EXACT.add(filled[order_id], qty)
            assert filled[order_id] <= size, "over-filled"

        # The same IOC/FOK orders ended, in the same order; none rests any more, and a FOK
        # that ended took nothing.
        ended_now = engine.drain_ended()
        assert ended_now == model.drain_ended()
        for order_id in ended_now:
            assert tifs[order_id] != "GTT" and order_id not in ended
            assert engine.get(order_id) is None
            if tifs[order_id] == "FOK":
                assert not filled[order_id], "a FOK ended partly filled"
            ended.add(order_id)
        for order_id, tif in tifs.items():
            if tif == "FOK":
                assert filled[order_id] in (0, placed[order_id][2]), "a FOK filled in part"

        # The engine's state equals the model's.
        assert engine.ledger("asks") == model.ledger("asks")
        assert engine.ledger("bids") == model.ledger("bids")
        assert set(engine._orders) == set(model.orders)
        for order_id, (_, _, size, _) in placed.items():
            resting = engine.get(order_id)
            if resting is None:
                assert order_id in removed or order_id in ended or filled[order_id] == size
            else:
                assert resting.remaining == _EXACT.subtract(size, filled[order_id]) > 0
                assert model.orders[order_id].remaining == resting.remaining


COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(COMMON, max_examples=250)
@given(scripts("ticker"))
def test_book_ticker_mode_matches_the_reference(script: list[Step]) -> None:
    run_both(script)


@settings(COMMON, max_examples=250)
@given(scripts("depth"))
def test_depth_mode_matches_the_reference(script: list[Step]) -> None:
    run_both(script)


@settings(COMMON, max_examples=150)
@given(scripts("mixed"))
def test_mixed_ticker_and_depth_updates_match_the_reference(script: list[Step]) -> None:
    run_both(script)


@settings(COMMON, max_examples=150)
@given(scripts("mixed", big=True))
def test_values_near_the_bounds_match_the_reference_exactly(script: list[Step]) -> None:
    run_both(script)
