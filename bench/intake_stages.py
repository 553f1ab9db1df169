"""Order intake layer by layer: where the time of a durable order goes.

`python -m bench.intake_stages STAGE` runs the service (configured from the environment,
as `python -m app`) with the layers after STAGE cut off, for this measurement only:

- `http`: the HTTP layer (token, rate limit, JSON, validation, the answer) over an order
  service that accepts at once, answering with one prebuilt order;
- `service`: intake and execution too (the order, its `accepted` event, the command, the
  symbol worker) over the in-memory store adapter (`STORE_URL=memory://`): nothing durable.

The whole service, every order committed before its 202, is `python -m app` itself.
`python -m bench` measures each stage under the same load as the bare handler and the
whole service.
"""

from __future__ import annotations

import sys
from typing import Any

CUT_STAGES = ("http", "service")


def _cut(stage: str) -> None:
    import os

    if stage == "http":
        from app.core.events import EventKind, order_event
        from app.intake.service import IntakeService, Submission
        from bench.__main__ import _order

        order = _order(0, "BENCHUSDT", "1000")
        accepted = Submission(order_event(EventKind.ACCEPTED, order).order, True)

        async def submit(self: IntakeService, owner: str, request: Any) -> Submission:
            return accepted

        IntakeService.submit = submit  # type: ignore[method-assign]
    elif stage == "service":
        os.environ["STORE_URL"] = "memory://"  # the composition root's memory adapter


if __name__ == "__main__":
    stage = sys.argv[1]
    if stage not in CUT_STAGES:
        raise SystemExit(f"usage: python -m bench.intake_stages {{{','.join(CUT_STAGES)}}}")
    _cut(stage)
    from app.__main__ import main

    main([])
