"""Symbols to partitions: a stable hash, the same in every process and every run.

A digest, not CRC32: CRC32 is linear, so symbols that differ in one character (S0USDT,
S1USDT, ...) can share their low bits and all land in one partition.
"""

from __future__ import annotations

import hashlib

DEFAULT_PARTITIONS = 16


def partition_of(symbol: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """Which partition (and so which executor) a symbol belongs to."""
    digest = hashlib.blake2b(symbol.encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions
