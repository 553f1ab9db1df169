"""Recorded and generated quote sources for the emulator."""

from __future__ import annotations

import bisect
import gzip
import itertools
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.emulator.sources import (
    RECORDED_BTCUSDT,
    Item,
    random_walk,
    recorded_lines,
    recorded_quotes,
)

LINES = 41_249
BOOK_TICKER_FRAMES = 28_040


@pytest.fixture(scope="module")
def book_ticker() -> list[Item]:
    return list(recorded_quotes(loop=False))


@pytest.fixture(scope="module")
def depth20() -> list[Item]:
    return list(recorded_quotes(kind="depth20", loop=False))


def _only_str_and_int(value: Any) -> bool:
    """True when a payload holds no float (nor anything else but str, int, list, dict)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_str_and_int(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_str_and_int(v) for v in value)
    return isinstance(value, str | int) and not isinstance(value, bool)


def _assert_sane_book(payload: dict[str, Any], levels: int) -> None:
    bids = [Decimal(p) for p, _ in payload["bids"]]
    asks = [Decimal(p) for p, _ in payload["asks"]]
    assert len(bids) == len(asks) == levels
    assert bids == sorted(set(bids), reverse=True) and asks == sorted(set(asks))
    assert 0 < bids[0] < asks[0]
    assert all(Decimal(q) > 0 for _, q in payload["bids"] + payload["asks"])


def test_recorded_file_parses() -> None:
    assert RECORDED_BTCUSDT.name == "btcusdt_20240808.gz" and RECORDED_BTCUSDT.is_file()
    lines = list(recorded_lines())
    assert len(lines) == LINES
    streams = Counter(m.get("stream", "snapshot") for _, m in lines)
    assert streams == {
        "btcusdt@bookTicker": BOOK_TICKER_FRAMES,
        "btcusdt@depth@100ms": 3_451,
        "btcusdt@trade": 9_757,
        "snapshot": 1,
    }
    stamps = [stamp for stamp, _ in lines]
    assert stamps == sorted(stamps)
    assert 345e9 < stamps[-1] - stamps[0] < 347e9  # 5 min 46 s


def test_recorded_book_ticker_payloads_are_the_recorded_ones(book_ticker: list[Item]) -> None:
    recorded = [m["data"] for _, m in recorded_lines() if m.get("stream") == "btcusdt@bookTicker"]
    assert len(book_ticker) == BOOK_TICKER_FRAMES
    assert {stream for _, stream, _ in book_ticker} == {"btcusdt@bookTicker"}
    assert [p for _, _, p in book_ticker] == recorded
    assert all(_only_str_and_int(p) for _, _, p in book_ticker)


def test_book_ticker_ids_strictly_rise_across_loops() -> None:
    replay = itertools.islice(recorded_quotes(speed=1000), 2 * BOOK_TICKER_FRAMES + 5)
    frames = list(replay)
    ids = [p["u"] for _, _, p in frames]
    assert all(b > a for a, b in itertools.pairwise(ids))
    # The second loop is the first again, ids shifted by one offset.
    offset = ids[BOOK_TICKER_FRAMES] - ids[0]
    assert offset > ids[BOOK_TICKER_FRAMES - 1] - ids[0]
    first, second = frames[0][2], frames[BOOK_TICKER_FRAMES][2]
    assert {**second, "u": first["u"]} == first
    assert frames[BOOK_TICKER_FRAMES][0] > 0  # a pause at the restart, not a burst


def test_delays_follow_the_recording_and_speed(book_ticker: list[Item]) -> None:
    normal = [d for d, _, _ in book_ticker]
    fast = [d for d, _, _ in recorded_quotes(loop=False, speed=10)]
    assert normal[0] == 0 and min(normal) >= 0
    assert 340 < sum(normal) < 350  # 5 min 46 s
    assert fast == pytest.approx([d / 10 for d in normal])
    with pytest.raises(ValueError):
        next(recorded_quotes(speed=0))


def test_depth_book_rebuilt_from_diffs_is_sane(depth20: list[Item]) -> None:
    assert len(depth20) > 3_400  # one per diff: none lost to the snapshot arriving late
    last = 0
    for delay, stream, payload in depth20:
        assert stream == "btcusdt@depth20@100ms"
        assert set(payload) == {"lastUpdateId", "bids", "asks"}
        _assert_sane_book(payload, 20)
        assert payload["lastUpdateId"] > last and delay >= 0
        last = payload["lastUpdateId"]
        assert _only_str_and_int(payload)
    assert 340 < sum(d for d, _, _ in depth20) < 350


def test_depth_top_matches_the_recorded_book_ticker(
    depth20: list[Item], book_ticker: list[Item]
) -> None:
    """bookTicker and depth share update ids: at each depth frame's id, the best levels are
    those of the latest bookTicker at or before it, prices and quantities alike."""
    tickers = [p for _, _, p in book_ticker]
    ids = [p["u"] for p in tickers]
    for _, _, payload in depth20:
        ticker = tickers[bisect.bisect_right(ids, payload["lastUpdateId"]) - 1]
        assert payload["bids"][0] == [ticker["b"], ticker["B"]]
        assert payload["asks"][0] == [ticker["a"], ticker["A"]]


def test_depth_levels_are_the_top_of_the_same_book(depth20: list[Item]) -> None:
    depth5 = list(itertools.islice(recorded_quotes(kind="depth5", loop=False), 300))
    for (d5, s5, p5), (d20, _, p20) in zip(depth5, depth20, strict=False):
        assert s5 == "btcusdt@depth5@100ms" and d5 == d20
        assert p5 == {**p20, "bids": p20["bids"][:5], "asks": p20["asks"][:5]}


def _write_recording(path: Path, messages: list[dict[str, Any]]) -> Path:
    stamp = 1_000_000_000_000
    with gzip.open(path, "wb") as out:
        for n, message in enumerate(messages):
            out.write(b"%d %s\n" % (stamp + n * 100_000_000, orjson.dumps(message)))
    return path


def _diff(first: int, last: int, event_ms: int, bids: list, asks: list) -> dict[str, Any]:
    data = {"e": "depthUpdate", "E": event_ms, "s": "XYZ", "U": first, "u": last}
    return {"stream": "xyz@depth@100ms", "data": {**data, "b": bids, "a": asks}}


def test_depth_mode_applies_diffs_received_before_the_snapshot(tmp_path: Path) -> None:
    snapshot = {
        "lastUpdateId": 15,
        "bids": [["9.00", "1.0"], ["8.00", "2.0"]],
        "asks": [["11.00", "1.0"], ["12.00", "2.0"]],
    }
    path = _write_recording(
        tmp_path / "rec.gz",
        [
            _diff(1, 10, 100, [["8.50", "5"]], []),  # already in the snapshot: ignored
            _diff(11, 20, 200, [["9.50", "1.5"]], [["11.00", "0.000"]]),  # spans 16
            snapshot,
            _diff(21, 30, 300, [["9.50", "0"]], [["10.50", "3"]]),
            _diff(31, 31, 350, [["9.00", "4"]], []),  # same 100 ms window: not pushed
            _diff(32, 40, 400, [], [["13.00", "1"]]),
        ],
    )
    frames = list(recorded_quotes(path, kind="depth5", loop=False))
    assert [(stream, p["lastUpdateId"]) for _, stream, p in frames] == [
        ("xyz@depth5@100ms", 20),
        ("xyz@depth5@100ms", 30),
        ("xyz@depth5@100ms", 40),
    ]
    assert frames[0][2]["bids"] == [["9.50", "1.5"], ["9.00", "1.0"], ["8.00", "2.0"]]
    assert frames[0][2]["asks"] == [["12.00", "2.0"]]  # zero quantity removes the level
    assert frames[1][2]["bids"] == [["9.00", "1.0"], ["8.00", "2.0"]]
    assert frames[2][2]["bids"] == [["9.00", "4"], ["8.00", "2.0"]]
    assert frames[2][2]["asks"] == [["10.50", "3"], ["12.00", "2.0"], ["13.00", "1"]]
    assert [d for d, _, _ in frames] == pytest.approx([0, 0.1, 0.2])

    looped = list(itertools.islice(recorded_quotes(path, kind="depth5"), 7))
    ids = [p["lastUpdateId"] for _, _, p in looped]
    assert ids == [20, 30, 40, 41, 51, 61, 62]
    looped[0][2]["bids"][0][1] = "mutated"  # a consumer's change doesn't leak into the replay
    assert looped[3][2]["bids"] == frames[0][2]["bids"]


def test_depth_mode_refuses_a_gap_in_the_diffs(tmp_path: Path) -> None:
    snapshot = {"lastUpdateId": 10, "bids": [["9", "1"]], "asks": [["11", "1"]]}
    path = _write_recording(
        tmp_path / "gap.gz",
        [snapshot, _diff(11, 12, 100, [], []), _diff(14, 15, 200, [], [])],
    )
    with pytest.raises(ValueError, match="skip"):
        list(recorded_quotes(path, kind="depth5", loop=False))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        next(recorded_quotes(kind="depth7"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        next(random_walk("X", seed=1, kind="trade"))  # type: ignore[arg-type]


def test_random_walk_is_deterministic_per_seed() -> None:
    first = list(itertools.islice(random_walk("ETHUSDT", seed=3), 500))
    again = list(itertools.islice(random_walk("ETHUSDT", seed=3), 500))
    other = list(itertools.islice(random_walk("ETHUSDT", seed=4), 500))
    assert first == again and first != other


def test_random_walk_book_ticker_is_decimal_and_sane() -> None:
    frames = list(itertools.islice(random_walk("ETHUSDT", seed=3, interval_s=0.25), 2_000))
    tick = Decimal("0.01")
    ids = [p["u"] for _, _, p in frames]
    assert all(b > a for a, b in itertools.pairwise(ids))
    for delay, stream, payload in frames:
        assert delay == 0.25 and stream == "ethusdt@bookTicker"
        assert set(payload) == {"u", "s", "b", "B", "a", "A"} and payload["s"] == "ETHUSDT"
        assert _only_str_and_int(payload)
        bid, ask = Decimal(payload["b"]), Decimal(payload["a"])
        assert bid > 0 and ask - bid >= tick
        assert bid % tick == 0 and ask % tick == 0
        assert Decimal(payload["B"]) > 0 and Decimal(payload["A"]) > 0
    assert len({p["b"] for _, _, p in frames}) > 10  # it walks
    assert len({p["B"] for _, _, p in frames}) > 100  # quantities vary


@pytest.mark.parametrize("kind", ["depth5", "depth10", "depth20"])
def test_random_walk_depth_is_sane(kind: str) -> None:
    levels = int(kind.removeprefix("depth"))
    walk = random_walk("btcusdt", seed=7, start_price="0.05", tick="0.01", kind=kind)  # type: ignore[arg-type]
    frames = list(itertools.islice(walk, 1_000))
    last = 0
    for _, stream, payload in frames:
        assert stream == f"btcusdt@{kind}@100ms"
        _assert_sane_book(payload, levels)  # prices stay positive near zero too
        assert _only_str_and_int(payload)
        assert payload["lastUpdateId"] > last
        last = payload["lastUpdateId"]


def test_an_id_base_shifts_every_update_id_and_keeps_them_rising() -> None:
    plain = list(itertools.islice(recorded_quotes(speed=1000), 3))
    based = list(itertools.islice(recorded_quotes(speed=1000, id_base=10**15), 3))
    assert [b[2]["u"] - p[2]["u"] for p, b in zip(plain, based, strict=True)] == [10**15] * 3
    walk = [item[2]["u"] for item in itertools.islice(random_walk("X", seed=1, id_base=500), 5)]
    assert walk[0] > 500 and walk == sorted(walk)
