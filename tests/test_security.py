"""Owners and tokens, Origin checks, rate limits and caps (CONTRACT.md, "Security")."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from app.adapters.local_limiter import LocalLimiter
from app.emulator.server import BinanceEmulator

TOKENS = "alice:alice-secret-token,bob:bob-secret-token"
ALICE = {"Authorization": "Bearer alice-secret-token"}
BOB = {"Authorization": "Bearer bob-secret-token"}
ORDER = {"symbol": "LTCBTC", "order_size": "1", "price": "5"}


async def _place(client: TestClient, headers: dict[str, str]) -> str:  # type: ignore[type-arg]
    response = await client.post("/order/limit", json=ORDER, headers=headers)
    assert response.status == 202, await response.text()
    return str((await response.json())["order_id"])


async def test_tokens_are_required_and_owners_are_isolated(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(api_tokens=TOKENS)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = await client.post("/order/limit", json=ORDER, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
        assert (await client.get("/orders", headers=headers)).status == 401
    order_id = await _place(client, ALICE)
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/orders/{order_id}", headers=BOB)
        assert response.status == 404  # not 403: Bob cannot even learn that it exists
        not_found = {"code": "not_found", "message": f"order {order_id} not found", "details": []}
        assert await response.json() == {"error": not_found}
    assert (await (await client.get("/orders", headers=BOB)).json())["orders"] == []
    mine = await (await client.get("/orders", headers=ALICE)).json()
    assert [o["order_id"] for o in mine["orders"]] == [order_id]
    assert (await client.get(f"/orders/{order_id}", headers=ALICE)).status == 200


async def test_websocket_needs_the_token_and_pushes_only_your_orders(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(api_tokens=TOKENS)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws")
    assert refused.value.status == 401
    alice_order = await _place(client, ALICE)
    async with (
        client.ws_connect("/ws?token=bob-secret-token") as bob,
        client.ws_connect("/ws", headers=ALICE) as alice,
    ):
        await bob.send_json({"op": "subscribe", "channel": "orders"})
        assert (await bob.receive_json())["type"] == "subscribed"
        await bob.send_json({"op": "subscribe", "order_id": alice_order})
        foreign = await bob.receive_json()
        await bob.send_json({"op": "subscribe", "order_id": "does-not-exist"})
        missing = await bob.receive_json()
        assert foreign["type"] == missing["type"] == "error"
        assert foreign["message"].replace(alice_order, "X") == missing["message"].replace(
            "does-not-exist", "X"
        )  # the same answer for both
        await alice.send_json({"op": "subscribe", "channel": "orders"})
        assert (await alice.receive_json())["type"] == "subscribed"
        second = await _place(client, ALICE)
        seen = await alice.receive_json()
        assert seen["order"]["order_id"] == second
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bob.receive_json(), 0.3)  # Bob is pushed nothing of Alice's


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("SAME", True),
        ("http://evil.example", False),
        ("http://trusted.example", True),  # listed in ALLOWED_ORIGINS
        ("null", False),
    ],
)
async def test_websocket_origin_check(start_app, origin: str | None, allowed: bool) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(allowed_origins="http://trusted.example")
    headers = {}
    if origin == "SAME":
        headers["Origin"] = f"http://{client.host}:{client.port}"
    elif origin is not None:
        headers["Origin"] = origin
    if allowed:
        async with client.ws_connect("/ws", headers=headers) as ws:
            await ws.send_json({"op": "subscribe", "channel": "orders"})
            assert (await ws.receive_json())["type"] == "subscribed"
    else:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws", headers=headers)
        assert refused.value.status == 403


def _origin_headers(client: TestClient, origin: str | None) -> dict[str, str]:  # type: ignore[type-arg]
    if origin == "SAME":
        return {"Origin": f"http://{client.host}:{client.port}"}
    return {} if origin is None else {"Origin": origin}


ORIGINS = [
    (None, True),  # not a browser: curl, scripts
    ("SAME", True),
    ("http://trusted.example", True),  # listed in ALLOWED_ORIGINS
    ("http://evil.example", False),
    ("http://127.0.0.1:1", False),  # same host, another port
    ("null", False),  # a sandboxed page or a file:// page
]


@pytest.mark.parametrize(("origin", "allowed"), ORIGINS)
async def test_a_foreign_origin_cannot_place_an_order(  # type: ignore[no-untyped-def]
    start_app, origin: str | None, allowed: bool
) -> None:
    client = await start_app(allowed_origins="http://trusted.example")
    # What any web page can make a browser send: a "simple" cross-site form post.
    headers = {**_origin_headers(client, origin), "Content-Type": "text/plain"}
    response = await client.post("/order/limit", data=json.dumps(ORDER), headers=headers)
    stored = (await (await client.get("/orders")).json())["orders"]
    if allowed:
        assert response.status == 202, await response.text()
        assert len(stored) == 1
    else:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
        assert stored == []


@pytest.mark.parametrize(("origin", "allowed"), ORIGINS)
async def test_a_foreign_origin_is_refused_on_every_order_endpoint(  # type: ignore[no-untyped-def]
    start_app, origin: str | None, allowed: bool
) -> None:
    client = await start_app(allowed_origins="http://trusted.example")
    order_id = await _place(client, {})
    headers = _origin_headers(client, origin)
    requests = [
        ("GET", "/orders", 200),
        ("GET", f"/orders/{order_id}", 200),
        ("GET", "/orders/unknown", 404),
        ("PUT", "/order/limit", 405),
        ("GET", "/account", 200),
        ("GET", "/fills", 200),
        ("DELETE", f"/orders/{order_id}", 200),
    ]
    for method, path, status in requests:
        response = await client.request(method, path, headers=headers)
        assert response.status == (status if allowed else 403), (method, path)
        if not allowed:
            assert (await response.json())["error"]["code"] == "forbidden"
    final = await (await client.get(f"/orders/{order_id}")).json()
    assert final["status"] == ("cancelled" if allowed else "open")
    assert (await client.get("/healthz", headers=headers)).status == 200  # not an order path


async def test_rate_limit_counts_every_order_request(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(rate_limit_per_s=3)
    statuses = [
        (await client.post("/order/limit", json=ORDER)).status,
        (await client.post("/order/limit", json={"symbol": "?"})).status,  # a 422 counts too
        (await client.delete("/orders/unknown")).status,  # so does a DELETE
    ]
    assert statuses == [202, 422, 404]
    limited = await client.post("/order/limit", json=ORDER)
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert (await limited.json())["error"]["code"] == "rate_limited"
    assert (await client.get("/orders")).status == 200  # reads are not order requests
    assert len((await (await client.get("/orders")).json())["orders"]) == 1


def test_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = LocalLimiter(2, 0, clock=lambda: now[0])
    assert limiter.take_request_now("a") == 0
    assert limiter.take_request_now("a") == 0  # a burst of up to the rate
    now[0] = 0.5
    assert limiter.take_request_now("a") == pytest.approx(0.5)  # never 3 in one second
    assert limiter.take_request_now("b") == 0  # per owner
    now[0] = 1.0  # the burst's first request is a second old
    assert limiter.take_request_now("a") == 0
    assert limiter.take_request_now("a") == 0
    assert limiter.take_request_now("a") > 0
    assert LocalLimiter(0, 0).take_request_now("a") == 0  # 0 turns it off
    slow = LocalLimiter(0.5, 0, clock=lambda: now[0])  # a fractional rate: 1 per 2 s
    assert slow.take_request_now("a") == 0
    assert slow.take_request_now("a") == pytest.approx(2.0)
    now[0] = 3.0
    assert slow.take_request_now("a") == 0


async def test_open_order_cap(start_app, emulator: BinanceEmulator) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(max_open_orders=2)
    first = await _place(client, {})
    await _place(client, {})
    capped = await client.post("/order/limit", json=ORDER)
    assert capped.status == 429
    assert "Retry-After" not in capped.headers  # retrying in a second would not help
    error = (await capped.json())["error"]
    assert error["code"] == "too_many_open_orders"
    assert "open orders" in error["message"] and "at most 2" in error["message"]
    assert (await client.delete(f"/orders/{first}")).status == 200
    await _place(client, {})  # room again once one ended


async def test_websocket_connection_and_subscription_caps(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(ws_max_connections_per_owner=2, ws_max_subscriptions=2)
    first = await client.ws_connect("/ws")
    second = await client.ws_connect("/ws")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws")
    assert refused.value.status == 429
    await first.send_json({"op": "subscribe", "channel": "orders"})
    await first.send_json({"op": "subscribe", "channel": "book", "symbol": "BTCUSDT"})
    await first.send_json({"op": "subscribe", "channel": "book", "symbol": "ETHUSDT"})
    replies = [await first.receive_json() for _ in range(3)]
    assert [r["type"] for r in replies] == ["subscribed", "subscribed", "error"]
    assert "too many subscriptions" in replies[2]["message"]
    await second.close()
    third = await client.ws_connect("/ws")  # a closed socket frees its place
    await third.close()
    await first.close()
