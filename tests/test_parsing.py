"""parse_frame refuses what the contract's bounds exclude, so nothing downstream can choke.

Prices and quantities are plain ASCII decimal strings, finite, non-negative, < 10^20 and
with at most 18 digits after the point (CONTRACT.md); update ids are ints in [0, 2^63).
Anything else is a MalformedFrame: counted, logged and skipped by the feed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from app.adapters.binance.parsing import MalformedFrame, parse_frame
from app.core.decimals import EXACT, fmt
from app.core.domain import BookUpdate
from app.push.hub import book_message

GOOD = {"u": 400900217, "s": "BTCUSDT", "b": "61824.01000000", "B": "1.23400000",
        "a": "61824.02000000", "A": "0.50000000"}  # fmt: skip

POISON = [
    "1" * 150,  # more digits than the exact context holds
    "1E+999999",  # an exponent: Decimal takes it, the fill arithmetic does not
    "1e5",
    "1E-5",
    "100000000000000000000",  # 10^20: out of bounds
    "1.0000000000000000001",  # 19 digits after the point
    "-1",
    "+1",
    "-0",
    "٣",  # ARABIC-INDIC DIGIT THREE: Decimal() reads it as 3
    "１",  # FULLWIDTH DIGIT ONE
    "1٣",
    " 1",
    "1 ",
    "1\n",
    "1_000",
    "NaN",
    "Infinity",
    "sNaN",
    "",
    ".",
    "1.",
    ".5",
    "0x10",
]


def _ticker(**fields: Any) -> bytes:
    data = {**GOOD, **fields}
    return orjson.dumps({"stream": "btcusdt@bookTicker", "data": data})


def _depth(bids: list[list[Any]], asks: list[list[Any]], update_id: Any = 7) -> bytes:
    data = {"lastUpdateId": update_id, "bids": bids, "asks": asks}
    return orjson.dumps({"stream": "btcusdt@depth5@100ms", "data": data})


def test_a_binance_book_ticker_is_read_exactly() -> None:
    update = parse_frame(_ticker(), 1.5)
    assert isinstance(update, BookUpdate)
    assert (update.symbol, update.update_id, update.received_at) == ("BTCUSDT", 400900217, 1.5)
    assert update.bids == ((Decimal("61824.01000000"), Decimal("1.23400000")),)
    assert update.asks == ((Decimal("61824.02000000"), Decimal("0.50000000")),)
    assert str(update.bids[0][0]) == "61824.01000000"  # exact, trailing zeros and all


@pytest.mark.parametrize("field", ["b", "B", "a", "A"])
@pytest.mark.parametrize("text", POISON)
def test_book_ticker_numbers_outside_the_bounds_are_malformed(field: str, text: str) -> None:
    with pytest.raises(MalformedFrame):
        parse_frame(_ticker(**{field: text}), 0.0)


@pytest.mark.parametrize("value", [1, 1.5, None, True, ["1"], {"x": "1"}])
@pytest.mark.parametrize("field", ["b", "B", "a", "A"])
def test_book_ticker_numbers_must_be_strings(field: str, value: Any) -> None:
    with pytest.raises(MalformedFrame):
        parse_frame(_ticker(**{field: value}), 0.0)


@pytest.mark.parametrize("text", POISON)
@pytest.mark.parametrize("where", ["bid price", "bid qty", "ask price", "ask qty"])
def test_depth_numbers_outside_the_bounds_are_malformed(where: str, text: str) -> None:
    bids: list[list[Any]] = [["2", "1"], ["1", "1"]]
    asks: list[list[Any]] = [["3", "1"], ["4", "1"]]
    side = bids if where.startswith("bid") else asks
    side[1][0 if where.endswith("price") else 1] = text
    with pytest.raises(MalformedFrame):
        parse_frame(_depth(bids, asks), 0.0)


@pytest.mark.parametrize(
    "update_id",  # as JSON text: orjson reads an integer past 2^64 as a float
    ["true", "false", "-1", str(2**63), str(2**64), "1.0", "1e3", '"5"', "null"],
)
def test_update_ids_must_be_reasonable_ints(update_id: str) -> None:
    placeholder = b'"@update_id@"'
    for frame in (_ticker(u="@update_id@"), _depth([["1", "1"]], [["2", "1"]], "@update_id@")):
        with pytest.raises(MalformedFrame):
            parse_frame(frame.replace(placeholder, update_id.encode()), 0.0)


def test_the_extremes_of_the_bounds_are_accepted_and_stay_exact() -> None:
    biggest, finest = "99999999999999999999.999999999999999999", "0.000000000000000001"
    update = parse_frame(_ticker(b=finest, B=biggest, a=biggest, A=finest, u=2**63 - 1), 0.0)
    assert isinstance(update, BookUpdate) and update.update_id == 2**63 - 1
    (bid, bid_qty), (ask, ask_qty) = update.bids[0], update.asks[0]
    shown = tuple(format(n, "f") for n in (bid, bid_qty, ask, ask_qty))
    assert shown == (finest, biggest, biggest, finest)
    # Everything downstream does with a quote works on these: no trap fires.
    EXACT.multiply(bid_qty, ask)
    EXACT.subtract(ask, bid)
    assert book_message(update)["ask"] == biggest


@pytest.mark.parametrize("zero", ["0", "0.00000000", "000.0"])
def test_a_book_ticker_side_at_price_zero_is_empty(zero: str) -> None:
    # Binance shows an empty book side as price 0: nothing there can be taken.
    no_asks = parse_frame(_ticker(a=zero, A="0.00000000"), 0.0)
    assert isinstance(no_asks, BookUpdate)
    assert no_asks.asks == () and no_asks.bids == ((Decimal("61824.01"), Decimal("1.234")),)
    no_bids = parse_frame(_ticker(b=zero, B="5"), 0.0)  # a quantity at price 0: still nothing
    assert isinstance(no_bids, BookUpdate)
    assert no_bids.bids == () and len(no_bids.asks) == 1
    message = book_message(no_bids)
    assert message["bid"] is None and message["ask"] == "61824.02"


def test_depth_levels_at_price_zero_or_quantity_zero_are_dropped() -> None:
    update = parse_frame(
        _depth(
            bids=[["0.00000000", "5.0"], ["1.5", "2"], ["1.4", "0.000"], ["1.6", "1"]],
            asks=[["0", "1"], ["2.5", "3"], ["0.0", "0.0"]],
        ),
        0.0,
    )
    assert isinstance(update, BookUpdate) and update.full_depth
    assert [(fmt(p), fmt(q)) for p, q in update.bids] == [("1.6", "1"), ("1.5", "2")]
    assert [(fmt(p), fmt(q)) for p, q in update.asks] == [("2.5", "3")]
