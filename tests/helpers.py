"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from app.core.domain import StreamKind


async def place(client: TestClient, expect: int = 202, **fields: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    body = {"symbol": "LTCBTC", "side": "sell", **fields}
    response = await client.post("/order/limit", json=body)
    payload = await response.json()
    assert response.status == expect, payload
    return payload


async def fetch(client: TestClient, order_id: str) -> dict[str, Any]:  # type: ignore[type-arg]
    response = await client.get(f"/orders/{order_id}")
    assert response.status == 200
    return await response.json()


def stream(symbol: str, kind: StreamKind = StreamKind.BOOK_TICKER) -> str:
    return kind.stream_name(symbol)


async def partly_filled_sell(
    client: TestClient,  # type: ignore[type-arg]
    emulator: Any,
    events: Any,
    *,
    size: str = "5",
    first_fill: str = "2",
) -> dict[str, Any]:
    """A LTCBTC sell at 10 whose first fill (`first_fill` at 10) is committed."""
    order = await place(client, order_size=size, price="10")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "10", first_fill, "11", "1")
    await events.wait_for(order["order_id"], "fill")
    return order
