"""Quote sources the emulator replays: real recorded Binance frames, or a seeded random walk.

Each source yields `(delay_s, stream, payload)`: wait `delay_s`, then publish `payload`
on `stream`. Prices and quantities stay the exact strings Binance sent (or Decimal
arithmetic for the random walk): no float anywhere.
"""

from __future__ import annotations

import gzip
import heapq
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

RECORDED_BTCUSDT = Path(__file__).resolve().parent.parent / "data" / "btcusdt_20240808.gz"
DEPTH_INTERVAL_NS = 100_000_000  # partial-depth streams push every 100 ms

Item = tuple[float, str, dict[str, Any]]


def recorded_lines(path: Path = RECORDED_BTCUSDT) -> Iterator[tuple[int, dict[str, Any]]]:
    """(receive time in ns, decoded message) for every line of a recording."""
    with gzip.open(path, "rb") as lines:
        for line in lines:
            stamp, _, frame = line.partition(b" ")
            if frame.strip():
                yield int(stamp), orjson.loads(frame)


def _book_ticker_frames(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for stamp, message in recorded_lines(path):
        stream = message.get("stream", "")
        if stream.endswith("@bookTicker"):
            yield stamp, stream, message["data"]


class _Book:
    """A local order book rebuilt from a REST snapshot plus diff-depth updates."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.last_update_id: int = snapshot["lastUpdateId"]
        self.bids = {Decimal(p): (p, q) for p, q in snapshot["bids"] if Decimal(q)}
        self.asks = {Decimal(p): (p, q) for p, q in snapshot["asks"] if Decimal(q)}

    def apply(self, diff: dict[str, Any]) -> bool:
        if diff["u"] <= self.last_update_id:
            return False  # already in the snapshot
        for side, changes in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for price, qty in changes:
                if Decimal(qty):
                    side[Decimal(price)] = (price, qty)
                else:
                    side.pop(Decimal(price), None)
        self.last_update_id = diff["u"]
        return True

    def top(self, levels: int) -> dict[str, Any]:
        bids = heapq.nlargest(levels, self.bids)
        asks = heapq.nsmallest(levels, self.asks)
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [list(self.bids[p]) for p in bids],
            "asks": [list(self.asks[p]) for p in asks],
        }


def _depth_frames(path: Path, levels: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    stream = f"btcusdt@depth{levels}@100ms"
    book: _Book | None = None
    last_emit = 0
    for stamp, message in recorded_lines(path):
        if "lastUpdateId" in message and "bids" in message:
            book = _Book(message)
            continue
        if book is None or not message.get("stream", "").startswith("btcusdt@depth@"):
            continue
        if book.apply(message["data"]) and stamp - last_emit >= DEPTH_INTERVAL_NS:
            last_emit = stamp
            yield stamp, stream, book.top(levels)


def _id_field(payload: dict[str, Any]) -> str:
    return "u" if "u" in payload else "lastUpdateId"


def recorded_quotes(
    path: Path = RECORDED_BTCUSDT,
    *,
    loop: bool = True,
    speed: float = 1.0,
    kind: str = "bookTicker",
) -> Iterator[Item]:
    """Replay a recording at `speed`× its pace; looping keeps update ids rising."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    levels = 0 if kind == "bookTicker" else int(kind.removeprefix("depth"))
    frames = list(_book_ticker_frames(path) if not levels else _depth_frames(path, levels))
    if not frames:
        return
    field = _id_field(frames[0][2])
    span = frames[-1][2][field] - frames[0][2][field] + 1
    offset = 0
    while True:
        previous = frames[0][0]
        for stamp, stream, payload in frames:
            delay = (stamp - previous) / 1e9 / speed
            previous = stamp
            yield delay, stream, {**payload, field: payload[field] + offset}
        if not loop:
            return
        offset += span


def random_walk(
    symbol: str,
    *,
    seed: int,
    start_price: str = "100",
    tick: str = "0.01",
    interval_s: float = 0.1,
    kind: str = "bookTicker",
) -> Iterator[Item]:
    """A deterministic (per seed) random walk of the book's top, forever."""
    rng = random.Random(seed)
    step = Decimal(tick)
    mid = Decimal(start_price)
    levels = 0 if kind == "bookTicker" else int(kind.removeprefix("depth"))
    update_id = 1
    while True:
        mid = max(step * 10, mid + step * rng.randint(-2, 2))
        half_spread = step * rng.randint(1, 2)
        bid, ask = mid - half_spread, mid + half_spread

        def qty() -> str:
            return str(Decimal(rng.randint(1, 5000)) / 1000)

        update_id += rng.randint(1, 3)
        if not levels:
            payload: dict[str, Any] = {
                "u": update_id, "s": symbol.upper(), "b": str(bid), "B": qty(),
                "a": str(ask), "A": qty(),
            }  # fmt: skip
            yield interval_s, f"{symbol.lower()}@bookTicker", payload
        else:
            payload = {
                "lastUpdateId": update_id,
                "bids": [[str(bid - step * n), qty()] for n in range(levels)],
                "asks": [[str(ask + step * n), qty()] for n in range(levels)],
            }
            yield interval_s, f"{symbol.lower()}@depth{levels}@100ms", payload
