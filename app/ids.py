"""Order ids: 32 hex characters, unique, roughly time-ordered, no syscall per id.

Microseconds since the epoch (14 hex digits), a random tag chosen once per process
(8 hex digits: two processes never share a database, but restarts do), and a counter
(10 hex digits), so two ids of one process never collide and ids of different runs
almost surely don't (and the UNIQUE constraint would refuse it if they did).
"""

from __future__ import annotations

import itertools
import os

from app.clock import now_us

_PROCESS_TAG = os.urandom(4).hex()
_COUNTER = itertools.count(int.from_bytes(os.urandom(4)))


def new_order_id() -> str:
    return f"{now_us():014x}{_PROCESS_TAG}{next(_COUNTER) & 0xFFFFFFFFFF:010x}"
