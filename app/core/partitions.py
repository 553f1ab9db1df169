"""Symbols to partitions: a stable hash, the same in every process and every run."""

from __future__ import annotations

import zlib

DEFAULT_PARTITIONS = 16


def partition_of(symbol: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """Which partition (and so which executor) a symbol belongs to."""
    return zlib.crc32(symbol.encode("ascii")) % partitions
