"""Recorded and generated quote sources for the emulator."""

from __future__ import annotations

import itertools
from decimal import Decimal

from app.emulator.sources import random_walk, recorded_lines, recorded_quotes

BOOK_TICKER_FRAMES = 28_040


def test_recorded_book_ticker_payloads_are_the_recorded_ones() -> None:
    recorded = [m["data"] for _, m in recorded_lines() if m.get("stream") == "btcusdt@bookTicker"]
    replayed = [p for _, _, p in recorded_quotes(loop=False)]
    assert len(replayed) == BOOK_TICKER_FRAMES
    assert replayed == recorded


def test_looping_keeps_update_ids_rising() -> None:
    ids = [p["u"] for _, _, p in itertools.islice(recorded_quotes(), 2 * BOOK_TICKER_FRAMES + 5)]
    assert all(
        b > a for a, b in itertools.pairwise(ids[BOOK_TICKER_FRAMES - 2 : BOOK_TICKER_FRAMES + 2])
    )
    assert ids[BOOK_TICKER_FRAMES] > ids[BOOK_TICKER_FRAMES - 1]
    assert ids[2 * BOOK_TICKER_FRAMES] > ids[2 * BOOK_TICKER_FRAMES - 1]


def test_delays_follow_the_recording_and_speed() -> None:
    normal = sum(d for d, _, _ in recorded_quotes(loop=False))
    fast = sum(d for d, _, _ in recorded_quotes(loop=False, speed=10))
    assert 340 < normal < 350  # 5 min 46 s
    assert abs(fast * 10 - normal) < 1e-6


def test_depth_book_rebuilt_from_diffs_is_sane() -> None:
    frames = list(itertools.islice(recorded_quotes(kind="depth5", loop=False), 500))
    assert len(frames) == 500
    last = 0
    for _, stream, payload in frames:
        assert stream == "btcusdt@depth5@100ms"
        bids = [Decimal(p) for p, _ in payload["bids"]]
        asks = [Decimal(p) for p, _ in payload["asks"]]
        assert len(bids) == len(asks) == 5
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0] < asks[0]
        assert payload["lastUpdateId"] > last
        last = payload["lastUpdateId"]


def test_random_walk_is_deterministic_and_decimal() -> None:
    first = list(itertools.islice(random_walk("ETHUSDT", seed=3), 200))
    again = list(itertools.islice(random_walk("ETHUSDT", seed=3), 200))
    other = list(itertools.islice(random_walk("ETHUSDT", seed=4), 200))
    assert first == again and first != other
    for _, stream, payload in first:
        assert stream == "ethusdt@bookTicker"
        assert Decimal(payload["b"]) < Decimal(payload["a"])
        assert all(isinstance(payload[k], str) for k in "bBaA")
    depth = next(random_walk("ETHUSDT", seed=3, kind="depth10"))
    assert depth[1] == "ethusdt@depth10@100ms" and len(depth[2]["bids"]) == 10
