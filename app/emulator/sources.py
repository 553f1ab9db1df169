"""Quote sources the emulator replays: real recorded Binance frames, or a seeded random walk.

Each source is a generator of `(delay_s, stream, payload)`: wait `delay_s`, then publish
`payload` on `stream`. Prices and quantities stay the exact strings Binance sent (or come
from Decimal arithmetic for the random walk): no float anywhere.
"""

from __future__ import annotations

import gzip
import heapq
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

import orjson

RECORDED_BTCUSDT = Path(__file__).resolve().parent.parent / "data" / "btcusdt_20240808.gz"
DEPTH_INTERVAL_MS = 100  # partial-depth streams push at most once per 100 ms window

Kind = Literal["bookTicker", "depth5", "depth10", "depth20"]
Item = tuple[float, str, dict[str, Any]]


def _levels(kind: str) -> int:
    """0 for bookTicker, else the number of depth levels; rejects unknown kinds."""
    if kind not in get_args(Kind):
        raise ValueError(f"kind must be one of {get_args(Kind)}, not {kind!r}")
    return 0 if kind == "bookTicker" else int(kind.removeprefix("depth"))


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
    """A local order book: a REST snapshot plus the diff-depth updates after it.

    Levels are keyed by Decimal price (for ordering) and keep the recorded strings.
    """

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.last_update_id: int = snapshot["lastUpdateId"]
        self.synced = False  # until the diff spanning lastUpdateId + 1 is applied
        self.bids = {Decimal(p): (p, q) for p, q in snapshot["bids"] if Decimal(q)}
        self.asks = {Decimal(p): (p, q) for p, q in snapshot["asks"] if Decimal(q)}

    def apply(self, diff: dict[str, Any]) -> bool:
        """Apply one `depthUpdate`; False when it is already in the book."""
        if diff["u"] <= self.last_update_id:
            return False
        expected = self.last_update_id + 1
        # The first diff applied must span lastUpdateId + 1; each later one must follow on.
        gap = diff["U"] != expected if self.synced else diff["U"] > expected
        if gap:
            raise ValueError(f"depth updates skip from {self.last_update_id} to {diff['U']}")
        for side, changes in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for price, qty in changes:
                if Decimal(qty):
                    side[Decimal(price)] = (price, qty)
                else:
                    side.pop(Decimal(price), None)
        self.last_update_id = diff["u"]
        self.synced = True
        return True

    def top(self, levels: int) -> dict[str, Any]:
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [list(self.bids[p]) for p in heapq.nlargest(levels, self.bids)],
            "asks": [list(self.asks[p]) for p in heapq.nsmallest(levels, self.asks)],
        }


def _depth_frames(path: Path, levels: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """The top `levels` of the rebuilt book: once when the snapshot arrives, then after the
    diffs, at most once per 100 ms window of Binance's event time (`E`).

    Diffs received before the snapshot are buffered and applied once it arrives: in the
    recording, as live, the snapshot lands after the diff that spans its lastUpdateId + 1.
    """
    book: _Book | None = None
    pending: list[dict[str, Any]] = []
    stream = ""
    last_window = -1
    for stamp, message in recorded_lines(path):
        if book is None and "lastUpdateId" in message and "bids" in message:
            book = _Book(message)
            for diff in pending:
                if book.apply(diff):
                    last_window = diff["E"] // DEPTH_INTERVAL_MS
            pending.clear()
            if stream:
                yield stamp, stream, book.top(levels)
            continue
        name = message.get("stream", "")
        if "@depth@" not in name and not name.endswith("@depth"):
            continue
        stream = stream or f"{name.partition('@')[0]}@depth{levels}@100ms"
        diff = message["data"]
        if book is None:
            pending.append(diff)
            continue
        window = diff["E"] // DEPTH_INTERVAL_MS
        if book.apply(diff) and window > last_window:
            last_window = window
            yield stamp, stream, book.top(levels)


def recorded_quotes(
    path: Path = RECORDED_BTCUSDT,
    *,
    loop: bool = True,
    speed: float = 1.0,
    kind: Kind = "bookTicker",
    id_base: int = 0,
) -> Iterator[Item]:
    """Replay a recording at `speed`× its pace, forever when `loop`.

    bookTicker mode yields the recorded bookTicker payloads; depthN mode yields partial-depth
    payloads of a book rebuilt from the snapshot and the diffs. Each loop adds an offset larger
    than the recording's id span, so update ids keep rising across loops; `id_base` is added
    to every id (the demo passes the clock, so ids keep rising across runs too: the service
    remembers the last id it applied per symbol, rule 1).
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    levels = _levels(kind)
    frames = list(_depth_frames(path, levels) if levels else _book_ticker_frames(path))
    if not frames:
        return
    field = "lastUpdateId" if levels else "u"
    span = frames[-1][2][field] - frames[0][2][field] + 1
    restart_delay = DEPTH_INTERVAL_MS / 1000 / speed
    offset = id_base
    while True:
        previous = None
        for stamp, stream, payload in frames:
            if previous is None:
                delay = restart_delay if offset != id_base else 0.0
            else:
                delay = (stamp - previous) / 1e9 / speed
            previous = stamp
            fresh = {**payload, field: payload[field] + offset}
            if levels:  # consumers get their own level lists, not the replayed ones
                fresh["bids"] = [list(level) for level in payload["bids"]]
                fresh["asks"] = [list(level) for level in payload["asks"]]
            yield delay, stream, fresh
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
    kind: Kind = "bookTicker",
    id_base: int = 0,
) -> Iterator[Item]:
    """A deterministic (per seed) random walk of the book's top, forever; update ids start
    above `id_base`.

    The mid moves by up to two ticks a step and never falls below enough ticks for every
    level to stay positive; the spread is 2 or 4 ticks; quantities vary between 0.001 and 5.
    """
    rng = random.Random(seed)
    step = Decimal(tick)
    if step <= 0:
        raise ValueError("tick must be positive")
    levels = _levels(kind)
    floor = step * (max(levels, 1) + 10)
    mid = max(floor, Decimal(start_price).quantize(step))
    name = symbol.lower()
    update_id = id_base

    def qty() -> str:
        return str(Decimal(rng.randint(1, 5000)).scaleb(-3))

    while True:
        mid = max(floor, mid + step * rng.randint(-2, 2))
        half_spread = step * rng.randint(1, 2)
        bid, ask = mid - half_spread, mid + half_spread
        update_id += rng.randint(1, 3)
        if not levels:
            payload: dict[str, Any] = {
                "u": update_id, "s": symbol.upper(), "b": str(bid), "B": qty(),
                "a": str(ask), "A": qty(),
            }  # fmt: skip
            yield interval_s, f"{name}@bookTicker", payload
        else:
            payload = {
                "lastUpdateId": update_id,
                "bids": [[str(bid - step * n), qty()] for n in range(levels)],
                "asks": [[str(ask + step * n), qty()] for n in range(levels)],
            }
            yield interval_s, f"{name}@depth{levels}@100ms", payload
