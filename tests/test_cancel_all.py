"""DELETE /orders?symbol=X: cancel every open order of the owner (CONTRACT.md, "Paper account")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.adapters.sqlite_store import SqliteStore
from app.core.domain import OrderStatus
from app.emulator.server import BinanceEmulator
from app.ports import OrderPage
from tests.conftest import EventLog
from tests.harness import Harness, order_request
from tests.helpers import fetch, stream

StartApp = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
TOKENS = "alice:tok-a,bob:tok-b"
ALICE = {"Authorization": "Bearer tok-a"}
BOB = {"Authorization": "Bearer tok-b"}


async def _place(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    symbol: str,
    size: str = "5",
    price: str = "10",
) -> dict[str, Any]:
    body = {"symbol": symbol, "side": "sell", "order_size": size, "price": price}
    response = await client.post("/order/limit", json=body, headers=headers)
    order: dict[str, Any] = await response.json()
    assert response.status == 202, order
    return order


async def _cancel_all(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    query: str = "",
    expect: int = 200,
) -> Any:
    response = await client.delete(f"/orders{query}", headers=headers)
    body = await response.json()
    assert response.status == expect, body
    return body


async def test_cancel_all_of_a_symbol_cancels_only_the_owners_orders_of_it(
    start_app: StartApp, emulator: BinanceEmulator
) -> None:
    client = await start_app(api_tokens=TOKENS)
    events = EventLog(client.app)
    try:
        partly = await _place(client, ALICE, "LTCBTC")
        await emulator.wait_subscribed(stream("LTCBTC"))
        emulator.book_ticker("LTCBTC", "10", "2", "11", "1")  # 2 of its 5 fill
        await events.wait_for(partly["order_id"], "fill")
        untouched = await _place(client, ALICE, "LTCBTC", price="12")
        other_symbol = await _place(client, ALICE, "ETHBTC")
        bobs = await _place(client, BOB, "LTCBTC", price="12")

        body = await _cancel_all(client, ALICE, "?symbol=ltcbtc")
        cancelled = body["cancelled"]
        # Newest first, as stored after the cancel, with the fills they kept.
        assert [o["order_id"] for o in cancelled] == [untouched["order_id"], partly["order_id"]]
        assert all(o["status"] == "cancelled" for o in cancelled)
        assert cancelled[1]["filled_qty"] == "2" and cancelled[1]["remaining_qty"] == "3"
        assert [(f["seq"], f["qty"]) for f in cancelled[1]["fills"]] == [(1, "2")]
        assert cancelled == [await _get(client, ALICE, o["order_id"]) for o in cancelled]
        await events.wait_for(untouched["order_id"], "cancelled")

        assert (await _get(client, ALICE, other_symbol["order_id"]))["status"] == "open"
        assert (await _get(client, BOB, bobs["order_id"]))["status"] == "open"
    finally:
        await events.close()


async def test_cancel_all_without_a_symbol_cancels_every_open_order_and_then_none(
    start_app: StartApp,
) -> None:
    client = await start_app(api_tokens=TOKENS)
    placed = [await _place(client, ALICE, symbol) for symbol in ("LTCBTC", "ETHBTC", "BNBBTC")]
    bobs = await _place(client, BOB, "ETHBTC")
    body = await _cancel_all(client, ALICE)
    assert [o["order_id"] for o in body["cancelled"]] == [o["order_id"] for o in placed[::-1]]
    assert {o["status"] for o in body["cancelled"]} == {"cancelled"}
    assert all(o["fills"] == [] for o in body["cancelled"])
    assert await _cancel_all(client, ALICE) == {"cancelled": []}
    assert (await _get(client, BOB, bobs["order_id"]))["status"] == "open"
    response = await client.get("/orders?status=open", headers=ALICE)
    assert (await response.json())["orders"] == []


async def test_an_order_already_final_is_not_in_the_answer(
    client: TestClient,  # type: ignore[type-arg]
    emulator: BinanceEmulator,
    events: EventLog,
) -> None:
    filled = await _place(client, {}, "LTCBTC", size="1")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "10", "1", "11", "1")
    await events.wait_for(filled["order_id"], "filled")
    resting = await _place(client, {}, "LTCBTC", price="20")
    body = await _cancel_all(client, {}, "?symbol=LTCBTC")
    assert [o["order_id"] for o in body["cancelled"]] == [resting["order_id"]]
    assert (await fetch(client, filled["order_id"]))["status"] == "filled"


async def test_cancel_all_lets_the_owner_place_orders_up_to_the_cap_again(
    start_app: StartApp,
) -> None:
    client = await start_app(max_open_orders=2)
    for symbol in ("LTCBTC", "ETHBTC"):
        await _place(client, {}, symbol)
    response = await client.post(
        "/order/limit", json={"symbol": "LTCBTC", "order_size": "1", "price": "10"}
    )
    assert response.status == 429
    assert len((await _cancel_all(client, {}))["cancelled"]) == 2
    await _place(client, {}, "LTCBTC")


async def test_hundreds_of_open_orders_are_all_cancelled_in_one_request(
    start_app: StartApp,
) -> None:
    client = await start_app(rate_limit_per_s=0)
    placed = [(await _place(client, {}, f"S{n % 10}BTC"))["order_id"] for n in range(300)]
    body = await _cancel_all(client, {})
    assert [o["order_id"] for o in body["cancelled"]] == placed[::-1]
    assert {o["status"] for o in body["cancelled"]} == {"cancelled"}


# -- the same rules as DELETE /orders/{id} ------------------------------------------------------


async def test_cancel_all_needs_a_token(start_app: StartApp) -> None:
    client = await start_app(api_tokens=TOKENS)
    body = await _cancel_all(client, {}, expect=401)
    assert body["error"]["code"] == "unauthorized"
    await _cancel_all(client, {"Authorization": "Bearer nope"}, expect=401)


async def test_cancel_all_refuses_a_foreign_browser_origin(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    order = await _place(client, {}, "LTCBTC")
    await _cancel_all(client, {"Origin": "https://evil.example"}, expect=403)
    assert (await fetch(client, order["order_id"]))["status"] == "open"


async def test_cancel_all_is_one_order_request_for_the_rate_limit(start_app: StartApp) -> None:
    client = await start_app(rate_limit_per_s=3)
    for symbol in ("LTCBTC", "ETHBTC"):
        await _place(client, {}, symbol)
    # The third request of the burst: one request however many orders it cancels.
    assert len((await _cancel_all(client, {}))["cancelled"]) == 2
    response = await client.delete("/orders")
    assert response.status == 429 and "Retry-After" in response.headers


@pytest.mark.parametrize("query", ["?symbol=l", "?symbol=LTC-BTC", "?status=open", "?limit=5"])
async def test_a_bad_query_is_422_and_cancels_nothing(
    client: TestClient,  # type: ignore[type-arg]
    query: str,
) -> None:
    order = await _place(client, {}, "LTCBTC")
    body = await _cancel_all(client, {}, query, expect=422)
    assert body["error"]["code"] == "validation_error" and body["error"]["details"]
    assert (await fetch(client, order["order_id"]))["status"] == "open"


async def test_cancel_all_is_in_the_openapi_document(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    document = await (await client.get("/openapi.json")).json()
    delete = document["paths"]["/orders"]["delete"]
    assert [p["name"] for p in delete["parameters"]] == ["symbol"]
    assert delete["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CancelledOrders"
    }
    schema = document["components"]["schemas"]["CancelledOrders"]
    assert schema["properties"]["cancelled"]["items"] == {"$ref": "#/components/schemas/OrderView"}


async def _get(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    order_id: str,
) -> dict[str, Any]:
    response = await client.get(f"/orders/{order_id}", headers=headers)
    assert response.status == 200
    order: dict[str, Any] = await response.json()
    return order


# -- a cancel racing a fill ---------------------------------------------------------------------


class ListingGatedStore(SqliteStore):
    """The next `list_orders` reads, says so, then waits for `gate` before it answers."""

    gate: asyncio.Event | None = None
    listed = asyncio.Event()

    async def list_orders(self, owner: str, **query: Any) -> OrderPage:
        page = await super().list_orders(owner, **query)
        gate, self.gate = self.gate, None
        if gate is not None:
            self.listed.set()
            await gate.wait()
        return page


async def test_an_order_filled_between_the_listing_and_its_cancel_is_left_out(
    tmp_path: Path,
) -> None:
    store = await ListingGatedStore.open(tmp_path / "gated.db")
    assert isinstance(store, ListingGatedStore)
    service = Harness(store)
    await service.start()
    try:
        filled = (await service.intake.submit("me", order_request(order_size="1", price="1"))).order
        resting = (
            await service.intake.submit("me", order_request(order_size="1", price="5"))
        ).order
        gate = store.gate = asyncio.Event()
        store.listed = asyncio.Event()
        cancel_all = asyncio.create_task(service.intake.cancel_all("me"))
        await store.listed.wait()  # both were read open
        service.quote("1", "1")  # fills the first, not the one at 5
        await service.event(filled.order_id, "filled")
        gate.set()
        cancelled = await cancel_all
        assert [o.order_id for o in cancelled] == [resting.order_id]
        assert cancelled[0].status is OrderStatus.CANCELLED
        stored = await store.get(filled.order_id)
        assert stored is not None and stored.status is OrderStatus.FILLED
    finally:
        await service.stop()
        await store.close()
