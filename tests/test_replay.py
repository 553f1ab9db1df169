"""Real recorded BTCUSDT frames through the emulator, the feed, the engine and SQLite,
with competing orders; every fill checked against the naive reference model."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

from aiohttp.test_utils import TestClient

from app.adapters.binance.parsing import parse_frame
from app.core.domain import BookUpdate
from app.emulator.server import BinanceEmulator
from app.emulator.sources import recorded_quotes
from tests.conftest import EventLog
from tests.helpers import fetch, place
from tests.reference_model import ReferenceModel

FRAMES = 6000


async def test_recorded_frames_fill_exactly_as_the_reference_model(
    client: TestClient,
    emulator: BinanceEmulator,
    events: EventLog,  # type: ignore[type-arg]
) -> None:
    rng = random.Random(8)
    frames = [(stream, payload) for _, stream, payload in
              itertools.islice(recorded_quotes(loop=False), FRAMES)]  # fmt: skip
    bids = [Decimal(p["b"]) for _, p in frames]
    low, high = min(bids), max(bids)
    orders = []
    for n in range(24):
        side = "buy" if n % 2 else "sell"
        limit = (low + (high - low) * Decimal(rng.random())).quantize(Decimal("0.01"))
        size = Decimal(rng.randint(1, 400)) / 100
        orders.append((side, limit, size))
    # A sentinel sell that only the last, synthetic quote can fill: once it has filled,
    # every frame before it has been applied.
    orders.append(("sell", Decimal("999999"), Decimal("1")))

    model = ReferenceModel()
    ids = []
    for side, limit, size in orders:
        placed = await place(client, symbol="BTCUSDT", side=side, order_size=str(size),
                             price=str(limit), timeout_s=600)  # fmt: skip
        ids.append(placed["order_id"])
        model.add(placed["order_id"], side, limit, size, expires_at=1e18, now=0.0)
    await emulator.wait_subscribed("btcusdt@bookTicker")

    last_u = frames[-1][1]["u"]
    frames.append(("btcusdt@bookTicker", {"u": last_u + 1, "s": "BTCUSDT", "b": "1000000",
                                          "B": "1000000", "a": "1000001", "A": "1"}))  # fmt: skip
    expected: dict[str, list[tuple[Decimal, Decimal, int]]] = {i: [] for i in ids}
    for stream, payload in frames:
        emulator.publish(stream, payload)
        update = parse_frame(f'{{"stream": "{stream}", "data": {_json(payload)}}}', 0.0)
        assert isinstance(update, BookUpdate)
        for order_id, update_id, price, qty in model.apply(update) or []:
            expected[order_id].append((price, qty, update_id))
    await events.wait_for(ids[-1], "filled", timeout=30)

    filled_somewhere = 0
    for order_id in ids:
        stored = await fetch(client, order_id)
        got = [(Decimal(f["price"]), Decimal(f["qty"]), f["update_id"]) for f in stored["fills"]]
        assert got == expected[order_id], order_id
        assert [f["seq"] for f in stored["fills"]] == list(range(1, len(got) + 1))
        total = sum((q for _, q, _ in got), Decimal(0))
        assert Decimal(stored["filled_qty"]) == total <= Decimal(stored["order_size"])
        filled_somewhere += bool(got)
    assert filled_somewhere >= 10  # the scenario really competes for liquidity


def _json(payload: dict[str, object]) -> str:
    import orjson

    return orjson.dumps(payload).decode()
