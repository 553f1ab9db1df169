"""Tickers kept as text (BookTicker) fill exactly as the exact path (BookUpdate) does.

The matcher decides from a ticker's text that it can fill nothing and change no ledger
(float comparisons that are exact when strict, and a ticker identical to the last applied
one). These tests run the same scripts through a matcher fed BookTickers and one fed the
equivalent BookUpdates, and require the same executions, ledgers and resting orders at
every step; and check the hard case: an order marketable at the touch while the touch
repeats a level it already took.
"""

from __future__ import annotations

from decimal import Context, Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.adapters.binance.parsing import parse_frame
from app.core.domain import BookTicker, BookUpdate, Side, TimeInForce
from app.core.matching import RestingOrder, SymbolMatcher, engine_limit

_EXACT = Context(prec=100)
NEVER = 1e18
SMALL_PRICES = [Decimal(p) / 2 for p in range(18, 24)]  # 9.0 .. 11.5
TOP = Decimal("99999999999999999999.999999999999999999")
ATOM = Decimal("0.000000000000000001")
# Distinct Decimals that all round to the same float: every comparison is a float tie.
BIG_PRICES = [_EXACT.subtract(TOP, _EXACT.multiply(ATOM, Decimal(k))) for k in range(4)]
QTY = st.sampled_from([Decimal(q) for q in ("0", "0.5", "1", "1.5", "2", "3.25")])
SIZE = st.sampled_from([Decimal(q) for q in ("0.5", "1", "2.5", "100")])
TIMES = [0.0, 5.0, 10.0]
EXPIRIES = [5.0, 10.0, NEVER, NEVER]
TIME_IN_FORCE = ["GTT", "GTT", "GTT", "IOC", "FOK", "market"]  # market: an IOC, no limit


def _text(value: Decimal, padding: int) -> str:
    """`value` as Binance writes it, with `padding` more trailing zeros where they fit."""
    text = f"{value:f}"
    fraction = len(text.partition(".")[2])
    room = 18 - fraction
    if room <= 0 or not padding:
        return text
    return text + ("" if "." in text else ".") + "0" * min(padding, room)


@st.composite
def ticker_texts(draw: st.DrawFn, prices: list[Decimal]) -> tuple[str, str, str, str]:
    zero = Decimal(0)
    bid = draw(st.sampled_from([*prices, zero]))
    ask = draw(st.sampled_from([*prices, zero]))
    pad = st.integers(0, 3)
    return (
        _text(bid, draw(pad)), _text(draw(QTY), draw(pad)),
        _text(ask, draw(pad)), _text(draw(QTY), draw(pad)),
    )  # fmt: skip


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple]:
    prices = draw(st.sampled_from([SMALL_PRICES, BIG_PRICES]))
    steps: list[tuple] = []
    update_id = 0
    last_texts: tuple[str, str, str, str] | None = None
    for n in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["add", "ticker", "ticker", "repeat", "remove", "forget"]))
        if kind == "add":
            side = draw(st.sampled_from([Side.BUY, Side.SELL]))
            limit = draw(st.sampled_from(prices))
            tif = draw(st.sampled_from(TIME_IN_FORCE))
            if tif == "market":
                tif, limit = "IOC", engine_limit(side, None)
            steps.append((
                "add", f"o{n}", side, limit, draw(SIZE), draw(st.sampled_from(EXPIRIES)),
                draw(st.sampled_from(TIMES)), TimeInForce(tif),
            ))  # fmt: skip
        elif kind in ("ticker", "repeat"):
            texts = (
                last_texts
                if kind == "repeat" and last_texts is not None
                else draw(ticker_texts(prices))
            )
            last_texts = texts
            update_id += draw(st.sampled_from([0, 1, 1, 1, 2]))  # 0: a stale repeat
            steps.append(("ticker", update_id, texts, draw(st.sampled_from(TIMES))))
        elif kind == "remove":
            steps.append(("remove", f"o{draw(st.integers(0, max(n - 1, 0)))}"))
        else:
            steps.append(("forget",))
    return steps


def _exact(symbol: str, update_id: int, texts: tuple[str, ...], at: float) -> BookUpdate:
    bid, bid_qty, ask, ask_qty = (Decimal(t) for t in texts)
    bids = ((bid, bid_qty),) if bid else ()
    asks = ((ask, ask_qty),) if ask else ()
    return BookUpdate(symbol, update_id, bids, asks, at)


def _state(matcher: SymbolMatcher) -> tuple:
    resting = sorted(
        (o.order_id, o.side, o.limit, o.remaining)
        for o in (matcher.get(i) for i in list(matcher._orders))
        if o is not None
    )
    return (matcher.ledger("asks"), matcher.ledger("bids"), matcher.last_update_id, resting)


def _from_frame(update_id: int, texts: tuple[str, ...], at: float) -> BookTicker:
    """The ticker as the feed makes it from a frame: its texts still in the frame."""
    bid, bid_qty, ask, ask_qty = texts
    data = {"u": update_id, "s": "X", "b": bid, "B": bid_qty, "a": ask, "A": ask_qty}
    ticker = parse_frame(orjson.dumps({"stream": "x@bookTicker", "data": data}), at)
    assert type(ticker) is BookTicker and ticker.frame is not None
    return ticker


def _run_both(steps: list[tuple]) -> list[tuple]:
    """The scripts through three matchers: tickers as texts, as frames, and exact."""
    fast, framed, exact = SymbolMatcher("X"), SymbolMatcher("X"), SymbolMatcher("X")
    seen = []
    for step in steps:
        if step[0] == "add":
            _, order_id, side, limit, size, expires, now, *tif = step
            results = [
                m.add(RestingOrder(order_id, side, limit, size, expires, *tif), now=now)
                if order_id not in m
                else None
                for m in (fast, framed, exact)
            ]
        elif step[0] == "ticker":
            _, update_id, texts, at = step
            results = [
                fast.apply(BookTicker("X", update_id, texts, at)),
                framed.apply(_from_frame(update_id, texts, at)),
                exact.apply(_exact("X", update_id, texts, at)),
            ]
        elif step[0] == "remove":
            results = [
                None if (order := m.remove(step[1])) is None else order.order_id
                for m in (fast, framed, exact)
            ]
        else:
            for m in (fast, framed, exact):
                m.forget_quote()
            results = [None, None, None]
        assert results[0] == results[1] == results[2], step
        assert _state(fast) == _state(framed) == _state(exact), step
        ended = exact.drain_ended()  # the same IOC/FOK ends on every path
        assert fast.drain_ended() == framed.drain_ended() == ended, step
        seen.append(results[0])
    return seen


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts())
def test_tickers_as_text_fill_exactly_as_the_exact_path(steps: list[tuple]) -> None:
    _run_both(steps)


def _ticker_frame(
    update_id: int, bid: str, bid_qty: str, ask: str = "0", ask_qty: str = "0"
) -> bytes:
    data = {"u": update_id, "s": "X", "b": bid, "B": bid_qty, "a": ask, "A": ask_qty}
    return orjson.dumps({"stream": "x@bookTicker", "data": data})


def test_the_touch_repeating_a_level_already_taken_fills_only_new_liquidity() -> None:
    """The hard case: marketable sells at the touch, the same bid again and again (only
    the update id changing), then a sliver more: exactly what the exact path fills."""
    quotes = [("100.0", "1.5")] * 50 + [("100.0", "1.50000001")] + [("100.0", "1.50000001")] * 20
    quotes += [("100.00", "1.50000001"), ("99.9", "1"), ("100.0", "3")]
    steps: list[tuple] = [
        ("add", "big", Side.SELL, Decimal("100"), Decimal("1000"), NEVER, 0.0),
        ("add", "small", Side.SELL, Decimal("99"), Decimal("0.5"), NEVER, 0.0),
    ]
    for n, (bid, qty) in enumerate(quotes, start=1):
        steps.append(("ticker", n, (bid, qty, "0", "0"), 1.0))
    executions = _run_both(steps)
    fills = [(e.order_id, e.update_id, e.qty) for result in executions if result for e in result]
    assert fills == [
        ("small", 1, Decimal("0.5")),
        ("big", 1, Decimal("1.0")),
        ("big", 51, Decimal("0.00000001")),
        ("big", 74, Decimal("3")),  # 99.9 traded the 100.0 entry through: all 3 offered
    ]


def test_a_float_tie_is_decided_exactly() -> None:
    """Limits one 10^-18 apart round to the same float: the exact path decides."""
    limit = _EXACT.subtract(TOP, ATOM)
    matcher = SymbolMatcher("X")
    matcher.add(RestingOrder("s", Side.SELL, limit, Decimal(1), NEVER), now=0.0)
    below = f"{_EXACT.subtract(limit, ATOM):f}"
    assert matcher.apply(BookTicker("X", 1, (below, "5", "0", "0"), 0.0)) == []
    filled = matcher.apply(BookTicker("X", 2, (f"{limit:f}", "5", "0", "0"), 0.0))
    assert filled is not None and [(e.price, e.qty) for e in filled] == [(limit, Decimal(1))]


def test_a_skipped_ticker_still_advances_the_update_id_and_the_quote() -> None:
    matcher = SymbolMatcher("X")
    matcher.add(RestingOrder("s", Side.SELL, Decimal(100), Decimal(1), NEVER), now=0.0)
    update = parse_frame(_ticker_frame(7, "50.0", "1"), 0.0)
    assert isinstance(update, BookTicker)
    assert matcher.apply(update) == []
    assert matcher.last_update_id == 7 and matcher.quote is update
    assert matcher.apply(parse_frame(_ticker_frame(7, "150.0", "1"), 0.0)) is None  # rule 1


def test_an_order_accepted_against_a_ticker_kept_as_text_matches_at_once() -> None:
    matcher = SymbolMatcher("X")
    matcher.apply(BookTicker("X", 1, ("101.5", "0.25", "0", "0"), 0.0))
    executions = matcher.add(RestingOrder("s", Side.SELL, Decimal(100), Decimal(1), NEVER), now=0.0)
    assert [(e.price, e.qty) for e in executions] == [(Decimal("101.5"), Decimal("0.25"))]


def test_a_book_ticker_decodes_to_what_book_update_holds() -> None:
    ticker = BookTicker("X", 3, ("1.50", "2", "0.00", "7"), 4.5)
    assert ticker.bids == ((Decimal("1.5"), Decimal(2)),)
    assert ticker.asks == ()  # price 0: Binance's empty side
    assert (ticker.symbol, ticker.update_id, ticker.received_at, ticker.full_depth) == (
        "X", 3, 4.5, False,
    )  # fmt: skip


_VALUES = st.one_of(
    st.sampled_from(["0", "0.00000000", "61824.01000000", "99999999999999999999.999999999999999999",
                     "1E5", "-1", "01", "1.", "", "٣", "1" * 21, "0.0000000000000000001"]),
    st.text(alphabet="0123456789.eE-+ ", max_size=8),
)  # fmt: skip
_IDS = st.sampled_from(["0", "7", "01", "-1", "9223372036854775807", "9223372036854775808",
                        "99999999999999999999", "1.0", '"7"'])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["btcusdt", "x1", "BTCUSDT", "a b"]),
    _IDS,
    _VALUES,
    _VALUES,
    _VALUES,
    _VALUES,
    st.sampled_from(["BTCUSDT", "", "b\\u0041"]),
)
def test_a_compact_ticker_frame_parses_as_the_general_path_parses_it(
    stream: str, update_id: str, b: str, bq: str, a: str, aq: str, s: str
) -> None:
    """Bytes in Binance's exact layout take the one-regex path; the same frame as str
    takes the general path. Both must give the same quote, or both refuse it."""
    raw = (
        f'{{"stream":"{stream}@bookTicker","data":{{"u":{update_id},"s":"{s}",'
        f'"b":"{b}","B":"{bq}","a":"{a}","A":"{aq}"}}}}'
    )
    outcomes = []
    for frame in (raw.encode(), raw):
        try:
            update = parse_frame(frame, 1.0)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        else:
            assert isinstance(update, BookUpdate)
            texts = update.texts if isinstance(update, BookTicker) else None
            outcomes.append(
                (update.symbol, update.update_id, update.bids, update.asks, update.full_depth,
                 texts)
            )  # fmt: skip
    assert outcomes[0] == outcomes[1]
