"""Binance combined-stream frames to typed values. Decimals stay exact: never float.

Prices and quantities must be what Binance sends and the contract bounds: plain ASCII
decimal strings ("61824.01000000"), finite, non-negative, below 10^20 and with at most 18
digits after the point. Anything else (an exponent, a sign, 150 digits, non-ASCII digits
such as "٣", whitespace) is a MalformedFrame, so no upstream number can later trap in the
exact arithmetic (app/core/decimals.py) or anywhere else downstream. Update ids are ints in
[0, 2^63). A level at price 0 (how Binance shows an empty book side) is no level; in
depth frames neither is a level of quantity 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from app.core.domain import BookTicker, BookUpdate, Level

MAX_UPDATE_ID = 2**63 - 1

# `[0-9]`, not `\d`: `\d` matches any Unicode digit. At most 20 digits before the point
# (< 10^20) and 1 to 18 after it.
_NUMBER = r"[0-9]{1,20}(?:\.[0-9]{1,18})?"
# Several numbers checked in one call, joined with spaces: a depth level's price and
# quantity, bookTicker's "b B a A".
_are_two_numbers = re.compile(" ".join([_NUMBER] * 2)).fullmatch
_are_four_numbers = re.compile(" ".join([_NUMBER] * 4)).fullmatch
_join = " ".join
# A bookTicker frame exactly as Binance writes it (compact, its keys in Binance's order),
# checked and taken apart in one call: what this matches, the general path would accept
# with the same values. Anything else (other spacing or key order, escapes, a malformed
# value) goes the general way, which decides. Possessive repeats (`{m,n}+`): what follows
# each can never be what it would give back, so they match the same frames, with no
# backtracking state kept (~25% faster). Groups: 1 the stream's symbol, 2 the update id,
# 3 the quote, 4-7 its texts (app/core/domain.py FRAME_*, which BookTicker reads).
_NUMBER_AT_ONCE = r"[0-9]{1,20}+(?:\.[0-9]{1,18}+)?+"
_match_ticker = re.compile(
    (
        r'\{"stream":"([a-z0-9]{1,40}+)@bookTicker","data":\{"u":(0|[1-9][0-9]{0,18}+),'
        r'"s":"[A-Z0-9]{0,40}+",("b":"(N)","B":"(N)","a":"(N)","A":"(N)")\}\}'
    )
    .replace("N", _NUMBER_AT_ONCE)
    .encode()
).fullmatch


class MalformedFrame(ValueError):
    """A frame that is not what Binance sends; the feed logs, counts and skips it."""


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to one of our requests: `{"result": ..., "id": n}` or an error."""

    id: Any
    result: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """Binance is about to close this connection: move to a new one now."""


Frame = BookUpdate | Response | ServerShutdown | None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _update_id(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_UPDATE_ID:
        raise MalformedFrame(f"{what} is not an update id: {_short(value)}")
    return value


def _levels(raw: Any, side: str, *, best_is_highest: bool) -> tuple[Level, ...]:
    if type(raw) is not list:
        raise MalformedFrame(f"{side} is not a list")
    levels: list[Level] = []
    for entry in raw:
        if type(entry) is not list or len(entry) < 2:
            raise MalformedFrame(f"{side} level is not [price, qty]: {_short(entry)}")
        price_text, qty_text = entry[0], entry[1]
        # One regex call for both, as in _book_ticker.
        if (
            type(price_text) is not str
            or type(qty_text) is not str
            or _are_two_numbers(_join((price_text, qty_text))) is None
        ):
            raise MalformedFrame(
                f"{side} level is not two decimals within the bounds: {_short(entry)}"
            )
        price = Decimal(price_text)
        if price:  # price 0 or quantity 0: no level
            qty = Decimal(qty_text)
            if qty:
                levels.append((price, qty))
    levels.sort(key=lambda level: level[0], reverse=best_is_highest)
    return tuple(levels)


def _book_ticker(symbol: str, data: dict[str, Any], received_at: float) -> BookTicker:
    # The hottest path: one regex call checks all four numbers (str.join also refuses a
    # non-string). They stay text: the matcher reads them as Decimals only when an order
    # might fill (app/core/domain.py BookTicker).
    try:
        update_id = data["u"]
        texts = (data["b"], data["B"], data["a"], data["A"])
        valid = _are_four_numbers(_join(texts))
    except (KeyError, TypeError) as exc:
        raise MalformedFrame(f"bookTicker payload is not u/b/B/a/A strings: {exc!r}") from exc
    if valid is None:
        raise MalformedFrame(
            "bookTicker price or quantity is not a decimal within the bounds: "
            + _short(list(texts))
        )
    if type(update_id) is not int or not 0 <= update_id <= MAX_UPDATE_ID:
        raise MalformedFrame(f"u is not an update id: {_short(update_id)}")
    return BookTicker(symbol, update_id, texts, received_at)


_STREAMS: dict[str, tuple[str, str]] = {}  # stream name -> (SYMBOL, channel), memoised


def _split_stream(stream: str) -> tuple[str, str]:
    known = _STREAMS.get(stream)
    if known is None:
        symbol, _, channel = stream.partition("@")
        known = (symbol.upper(), channel)
        if len(_STREAMS) < 4096:  # a bounded memo: only well-formed frames get here
            _STREAMS[stream] = known
    return known


_TICKER_SYMBOLS: dict[bytes, str] = {}  # b"btcusdt" -> "BTCUSDT", memoised


def _ticker_symbol(stream: bytes) -> str:
    symbol = _split_stream(f"{stream.decode()}@bookTicker")[0]
    if len(_TICKER_SYMBOLS) < 4096:
        _TICKER_SYMBOLS[stream] = symbol
    return symbol


def parse_frame(raw: str | bytes, received_at: float) -> Frame:
    """Parse one text frame of the combined `/stream` endpoint.

    Returns None for a well-formed frame of no interest (another stream type).
    """
    if type(raw) is bytes and (ticker := _match_ticker(raw)) is not None:
        symbol = _TICKER_SYMBOLS.get(ticker[1])
        if symbol is None:
            symbol = _ticker_symbol(ticker[1])
        number = int(ticker[2])
        if number <= MAX_UPDATE_ID:
            return BookTicker(symbol, number, None, received_at, ticker)
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedFrame(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedFrame("frame is not a JSON object")
    if "stream" not in message:
        if "id" in message and ("result" in message or "error" in message):
            return Response(message["id"], message.get("result"), message.get("error"))
        if message.get("e") == "serverShutdown":
            return ServerShutdown()
        raise MalformedFrame("frame has neither a stream nor a request id")
    stream, data = message["stream"], message.get("data")
    if not isinstance(stream, str) or not isinstance(data, dict):
        raise MalformedFrame("combined frame without a stream name or data object")
    if data.get("e") == "serverShutdown":
        return ServerShutdown()
    symbol, channel = _split_stream(stream)
    if channel == "bookTicker":
        return _book_ticker(symbol, data, received_at)
    if channel.startswith("depth") and "lastUpdateId" in data:
        # Partial-book frames carry no symbol: the stream name is the only place it is.
        return BookUpdate(
            symbol=symbol,
            update_id=_update_id(data.get("lastUpdateId"), "lastUpdateId"),
            bids=_levels(data.get("bids"), "bids", best_is_highest=True),
            asks=_levels(data.get("asks"), "asks", best_is_highest=False),
            received_at=received_at,
            full_depth=True,
        )
    return None
