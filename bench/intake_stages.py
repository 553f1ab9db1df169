"""Order intake layer by layer: where the time of a durable order goes.

`python -m bench.intake_stages STAGE` runs the service (configured from the environment,
as `python -m app`) with the layers after STAGE cut off, for this measurement only:

- `http`: the HTTP layer (token, rate limit, JSON, validation, the answer) over an order
  service that accepts at once, answering with one prebuilt order;
- `service`: the order service too (the order, its `accepted` event, the symbol worker)
  over a store that stores nothing.

The whole service, every order committed before its 202, is `python -m app` itself.
`python -m bench` measures each stage under the same load as the bare handler and the
whole service.
"""

from __future__ import annotations

import sys
from typing import Any

CUT_STAGES = ("http", "service")


def _cut(stage: str) -> None:
    from app.bus import order_event
    from app.service.orders import OrderService, Submission
    from app.store.sqlite import SqliteStore
    from bench.__main__ import _order

    if stage == "http":
        order = _order(0, "BENCHUSDT", "1000")
        accepted = Submission(order, True, order_event("accepted", order).order)

        async def submit(self: OrderService, owner: str, request: Any) -> Submission:
            return accepted

        OrderService.submit = submit  # type: ignore[method-assign]
    elif stage == "service":

        async def insert_order(self: SqliteStore, order: Any) -> None:
            pass

        SqliteStore.insert_order = insert_order  # type: ignore[method-assign]


if __name__ == "__main__":
    stage = sys.argv[1]
    if stage not in CUT_STAGES:
        raise SystemExit(f"usage: python -m bench.intake_stages {{{','.join(CUT_STAGES)}}}")
    _cut(stage)
    from app.__main__ import main

    main([])
