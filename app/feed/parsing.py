"""Binance combined-stream frames to typed values. Decimals stay exact: never float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from app.domain import BookUpdate, Level


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


def _decimal(value: Any, what: str) -> Decimal:
    if not isinstance(value, str):
        raise MalformedFrame(f"{what} is not a decimal string: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise MalformedFrame(f"{what} is not a decimal: {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise MalformedFrame(f"{what} is not a finite non-negative decimal: {value!r}")
    return number


def _update_id(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedFrame(f"{what} is not an update id: {value!r}")
    return value


def _levels(raw: Any, side: str, *, best_is_highest: bool) -> tuple[Level, ...]:
    if not isinstance(raw, list):
        raise MalformedFrame(f"{side} is not a list")
    levels: list[Level] = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) < 2:
            raise MalformedFrame(f"{side} level is not [price, qty]: {entry!r}")
        price, qty = _decimal(entry[0], f"{side} price"), _decimal(entry[1], f"{side} qty")
        if qty:
            levels.append((price, qty))
    levels.sort(key=lambda level: level[0], reverse=best_is_highest)
    return tuple(levels)


def _book_ticker(symbol: str, data: dict[str, Any], received_at: float) -> BookUpdate:
    # The hottest path: one try around the exact conversions, validation after.
    try:
        update_id = data["u"]
        bid_text, ask_text = data["b"], data["a"]
        bid, bid_qty = Decimal(bid_text), Decimal(data["B"])
        ask, ask_qty = Decimal(ask_text), Decimal(data["A"])
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise MalformedFrame(f"bookTicker payload is not u/b/B/a/A: {exc!r}") from exc
    if type(update_id) is not int or update_id < 0:
        raise MalformedFrame(f"u is not an update id: {update_id!r}")
    if type(bid_text) is not str or type(ask_text) is not str:
        raise MalformedFrame("prices must be decimal strings")
    if not (bid.is_finite() and bid_qty.is_finite() and ask.is_finite() and ask_qty.is_finite()):
        raise MalformedFrame(f"not a finite decimal: {data!r}")
    if bid < 0 or bid_qty < 0 or ask < 0 or ask_qty < 0:
        raise MalformedFrame(f"a negative price or quantity: {data!r}")
    return BookUpdate(symbol, update_id, ((bid, bid_qty),), ((ask, ask_qty),), received_at)


_STREAMS: dict[str, tuple[str, str]] = {}  # stream name -> (SYMBOL, channel), memoised


def _split_stream(stream: str) -> tuple[str, str]:
    known = _STREAMS.get(stream)
    if known is None:
        symbol, _, channel = stream.partition("@")
        known = (symbol.upper(), channel)
        if len(_STREAMS) < 4096:  # a bounded memo: only well-formed frames get here
            _STREAMS[stream] = known
    return known


def parse_frame(raw: str | bytes, received_at: float) -> Frame:
    """Parse one text frame of the combined `/stream` endpoint.

    Returns None for a well-formed frame of no interest (another stream type).
    """
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
