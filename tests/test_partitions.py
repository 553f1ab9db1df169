"""Symbols spread over the partitions, the same way in every process."""

from __future__ import annotations

from collections import Counter

from app.core.partitions import partition_of


def test_similar_symbols_spread_over_partitions() -> None:
    spread = Counter(partition_of(f"S{n}USDT") for n in range(160))
    assert len(spread) == 16 and max(spread.values()) < 25


def test_a_symbol_always_lands_in_the_same_partition() -> None:
    assert (
        partition_of("BTCUSDT") == partition_of("BTCUSDT") == 2
    )  # fixed forever: stored data and running processes rely on it
    assert all(0 <= partition_of(f"X{n}", 5) < 5 for n in range(100))
