"""Wall-clock time as integer microseconds since the epoch, and its RFC 3339 form."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


_SECONDS: dict[int, str] = {}


def rfc3339(us: int) -> str:
    """`2026-11-25T04:54:33.461100Z`; the date-time part is cached per second."""
    seconds, micros = divmod(us, 1_000_000)
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[seconds] = (_EPOCH + timedelta(seconds=seconds)).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    return f"{prefix}.{micros:06d}Z"
