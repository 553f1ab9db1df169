"""End to end through HTTP, the service, the engine, SQLite and the emulated Binance feed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from app.core.domain import StreamKind
from app.emulator.server import BinanceEmulator
from tests.conftest import EventLog
from tests.helpers import fetch, place, stream
from tests.service_process import free_port


async def test_the_original_curl_with_no_json_content_type(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    url = f"http://{client.host}:{client.port}/order/limit"
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", "-i", "-X", "POST", url,
        "--data", '{"symbol": "LTCBTC", "order_size": 1000, "price": 0.0001}',
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    head, _, body = out.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 202"), head
    order = json.loads(body)
    assert f"Location: /orders/{order['order_id']}" in head
    assert order["status"] == "open"
    assert order["order_size"] == "1000" and order["price"] == "0.0001"
    assert order["side"] == "sell" and order["remaining_qty"] == "1000"

    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "0.0025", "250", "0.0026", "10")
    await events.wait_for(order["order_id"], "fill")
    stored = await fetch(client, order["order_id"])
    assert stored["status"] == "partially_filled"
    assert stored["filled_qty"] == "250" and stored["remaining_qty"] == "750"
    assert stored["avg_price"] == "0.0025"
    assert [(f["seq"], f["price"], f["qty"]) for f in stored["fills"]] == [(1, "0.0025", "250")]

    db = sqlite3.connect(_db_path(client))
    rows = db.execute("SELECT order_id, seq, price, qty FROM fills").fetchall()
    assert rows == [(order["order_id"], 1, "0.0025", "250")]


def _db_path(client: TestClient) -> str:  # type: ignore[type-arg]
    from app.keys import SETTINGS

    return str(client.app[SETTINGS].database_path)


async def test_the_original_task_example_sell_25_at_42(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(client, symbol="BTCUSDT", order_size="25", price="42")
    await emulator.wait_subscribed(stream("BTCUSDT"))
    emulator.book_ticker("BTCUSDT", "40", "10", "43", "1")
    emulator.book_ticker("BTCUSDT", "42", "5", "43", "1")
    emulator.book_ticker("BTCUSDT", "42.5", "30", "43", "1")
    await events.wait_for(order["order_id"], "filled")
    final = await fetch(client, order["order_id"])
    assert final["status"] == "filled"
    assert [(f["price"], f["qty"]) for f in final["fills"]] == [("42", "5"), ("42.5", "20")]
    assert final["avg_price"] == "42.4"
    kinds = [e.kind for e in events.of(order["order_id"])]
    assert kinds == ["accepted", "fill", "fill", "filled"]


async def test_buy_fills_against_asks_at_or_below_limit(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(client, symbol="ETHUSDT", side="buy", order_size="3", price="100")
    await emulator.wait_subscribed(stream("ETHUSDT"))
    emulator.book_ticker("ETHUSDT", "99", "9", "101", "9")  # too dear
    emulator.book_ticker("ETHUSDT", "99", "9", "100", "1")
    emulator.book_ticker("ETHUSDT", "98", "9", "99.5", "5")
    await events.wait_for(order["order_id"], "filled")
    final = await fetch(client, order["order_id"])
    assert [(f["price"], f["qty"]) for f in final["fills"]] == [("100", "1"), ("99.5", "2")]
    assert final["avg_price"] == "99.66666666666666666666666667"


async def test_competing_orders_price_then_time_priority(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    first = await place(client, order_size="4", price="10")
    better = await place(client, order_size="4", price="9")  # sells lower: better limit
    second = await place(client, order_size="4", price="10")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "10", "6", "11", "1")
    await events.wait_for(first["order_id"], "fill")
    await events.wait_for(better["order_id"], "filled")
    assert (await fetch(client, better["order_id"]))["filled_qty"] == "4"
    assert (await fetch(client, first["order_id"]))["filled_qty"] == "2"
    assert (await fetch(client, second["order_id"]))["filled_qty"] == "0"


async def test_repeated_level_is_not_taken_twice(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(client, order_size="10", price="5")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "5", "3", "6", "1")
    emulator.book_ticker("LTCBTC", "5", "3", "6", "2")  # same bid again: nothing new
    emulator.book_ticker("LTCBTC", "5", "4", "6", "3")  # grew by 1: only 1 more
    emulator.book_ticker("LTCBTC", "5.1", "2", "6", "3")  # better level: 2 more
    await events.wait_for(order["order_id"], "fill", count=3)
    fills = (await fetch(client, order["order_id"]))["fills"]
    assert [(f["price"], f["qty"]) for f in fills] == [("5", "3"), ("5", "1"), ("5.1", "2")]


async def test_expiry_keeps_the_partial_fill(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(client, order_size="10", price="5", timeout_s=0.5)
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "5", "3", "6", "1")
    await events.wait_for(order["order_id"], "expired")
    final = await fetch(client, order["order_id"])
    assert final["status"] == "expired"
    assert final["filled_qty"] == "3" and final["remaining_qty"] == "7"
    assert final["reason"]
    assert len(final["fills"]) == 1
    emulator.book_ticker("LTCBTC", "6", "100", "7", "1")  # too late to fill anything
    response = await client.delete(f"/orders/{order['order_id']}")
    assert response.status == 409


async def test_expiry_with_a_silent_stream_names_the_reason(
    client: TestClient, events: EventLog
) -> None:
    order = await place(client, symbol="NOSUCHCOIN", order_size="1", price="1", timeout_s=0.3)
    await events.wait_for(order["order_id"], "expired")
    final = await fetch(client, order["order_id"])
    assert final["status"] == "expired"
    assert "no market data" in final["reason"]


async def test_cancel_keeps_fills_and_is_final(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(client, order_size="10", price="5")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "5", "4", "6", "1")
    await events.wait_for(order["order_id"], "fill")
    response = await client.delete(f"/orders/{order['order_id']}")
    assert response.status == 200
    cancelled = await response.json()
    assert cancelled["status"] == "cancelled" and cancelled["filled_qty"] == "4"
    assert len(cancelled["fills"]) == 1
    again = await client.delete(f"/orders/{order['order_id']}")
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "order_final"
    emulator.book_ticker("LTCBTC", "6", "100", "7", "1")
    missing = await client.delete("/orders/does-not-exist")
    assert missing.status == 404
    assert (await fetch(client, order["order_id"]))["filled_qty"] == "4"


async def test_order_matches_the_known_quote_at_once(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    first = await place(client, order_size="1", price="5")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "5", "3", "6", "1")
    await events.wait_for(first["order_id"], "filled")
    # The quote still shows 3 at 5, of which we took 1: a new order gets the other 2.
    late = await place(client, order_size="5", price="5")
    await events.wait_for(late["order_id"], "fill")
    fills = (await fetch(client, late["order_id"]))["fills"]
    assert [(f["price"], f["qty"]) for f in fills] == [("5", "2")]


async def test_idempotent_client_order_id(client: TestClient) -> None:
    first = await place(client, order_size="1", price="5", client_order_id="abc-1")
    response = await client.post(
        "/order/limit",
        json={"symbol": "ltcbtc", "order_size": 1, "price": "5.0", "client_order_id": "abc-1"},
    )
    assert response.status == 200
    assert (await response.json())["order_id"] == first["order_id"]
    conflict = await client.post(
        "/order/limit",
        json={"symbol": "LTCBTC", "order_size": 2, "price": "5", "client_order_id": "abc-1"},
    )
    assert conflict.status == 409
    body = await conflict.json()
    assert "order_size" in body["error"]["message"]
    listing = await (await client.get("/orders")).json()
    assert len(listing["orders"]) == 1


async def test_list_filters_and_paginates_newest_first(client: TestClient) -> None:
    ids = [(await place(client, symbol=s, order_size="1", price="5"))["order_id"]
           for s in ("AAAUSDT", "BBBUSDT", "AAAUSDT", "AAAUSDT")]  # fmt: skip
    page = await (await client.get("/orders", params={"symbol": "aaausdt", "limit": "2"})).json()
    assert [o["order_id"] for o in page["orders"]] == [ids[3], ids[2]]
    assert "fills" not in page["orders"][0]
    rest = await (
        await client.get(
            "/orders", params={"symbol": "AAAUSDT", "limit": "2", "cursor": page["next_cursor"]}
        )
    ).json()
    assert [o["order_id"] for o in rest["orders"]] == [ids[0]]
    assert rest["next_cursor"] is None
    opened = await (await client.get("/orders", params={"status": "open"})).json()
    assert len(opened["orders"]) == 4
    none = await (await client.get("/orders", params={"status": "filled"})).json()
    assert none == {"orders": [], "next_cursor": None}


async def test_upstream_drop_mid_order_reconnects_and_fills(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(client, order_size="10", price="5")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "5", "4", "6", "1")
    await events.wait_for(order["order_id"], "fill")
    opened = emulator.connections_opened
    await emulator.drop_connections()
    await emulator.wait_connections(opened + 1)
    await emulator.wait_subscribed(stream("LTCBTC"))
    assert emulator.connections_opened == opened + 1
    emulator.book_ticker("LTCBTC", "5.5", "6", "6", "1")
    await events.wait_for(order["order_id"], "filled")
    final = await fetch(client, order["order_id"])
    assert [(f["price"], f["qty"]) for f in final["fills"]] == [("5", "4"), ("5.5", "6")]


async def test_depth_mode_sweeps_levels_best_first(
    start_app,
    emulator: BinanceEmulator,  # type: ignore[no-untyped-def]
) -> None:
    client = await start_app(market_stream="depth5")
    events = EventLog(client.app)
    try:
        order = await place(client, side="buy", order_size="7", price="102")
        await emulator.wait_subscribed(stream("LTCBTC", StreamKind.DEPTH5))
        emulator.depth(
            "LTCBTC",
            bids=[("99", "1")],
            asks=[("100", "2"), ("101", "3"), ("102", "1"), ("103", "50")],
            levels=5,
        )
        await events.wait_for(order["order_id"], "fill", count=3)
        fills = (await fetch(client, order["order_id"]))["fills"]
        assert [(f["price"], f["qty"]) for f in fills] == [("100", "2"), ("101", "3"), ("102", "1")]
        # 101 disappears from the shown range: traded through, so its 3 are new again.
        emulator.depth("LTCBTC", bids=[("99", "1")], asks=[("100", "2"), ("102", "5")], levels=5)
        await events.wait_for(order["order_id"], "filled")
        fills = (await fetch(client, order["order_id"]))["fills"]
        assert [(f["price"], f["qty"]) for f in fills][3:] == [("102", "1")]
    finally:
        await events.close()


async def test_health_and_readiness(client: TestClient, emulator: BinanceEmulator) -> None:  # type: ignore[type-arg]
    from app.keys import EXECUTOR

    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200 and body["ready"] and body["database"] == "ok"
    assert body["feed"]["url"] == emulator.base_url and body["feed"]["connections"] == []
    await place(client, order_size="1", price="1")
    await emulator.wait_subscribed(stream("LTCBTC"))
    feed = (await (await client.get("/readyz")).json())["feed"]
    assert feed["connected"] and feed["connections"][0]["streams"] == ["ltcbtc@bookTicker"]
    client.app[EXECUTOR].ready = False  # as before recovery has finished
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503 and (await not_ready.json())["ready"] is False
    refused = await client.post(
        "/order/limit", json={"symbol": "LTCBTC", "order_size": 1, "price": 1}
    )
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"


async def test_metrics(client: TestClient, emulator: BinanceEmulator, events: EventLog) -> None:  # type: ignore[type-arg]
    order = await place(client, order_size="2", price="5")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "5", "2", "6", "1")
    emulator.book_ticker("LTCBTC", "5", "2", "6", "1", update_id=1)  # out of order: skipped
    emulator.publish("ltcbtc@bookTicker", {"u": "garbage"})  # malformed: skipped
    emulator.book_ticker("LTCBTC", "5", "2", "6", "1")
    await events.wait_for(order["order_id"], "filled")
    async with client.ws_connect("/ws?channel=orders") as ws:
        await ws.receive_json()
        text = await (await client.get("/metrics")).text()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['executor_orders_total{status="open"}'] == 1
    assert samples['executor_orders_total{status="filled"}'] == 1
    assert samples["executor_fills_total"] == 1
    assert samples["executor_open_orders"] == 0
    assert samples['executor_market_updates_total{outcome="skipped"}'] == 1
    assert samples['executor_market_updates_total{outcome="applied"}'] >= 2
    assert samples["executor_upstream_connected"] == 1
    assert samples["executor_upstream_malformed_frames_total"] == 1
    assert samples["executor_ws_clients"] == 1
    count = 'executor_http_request_duration_seconds_count{method="POST",route="/order/limit"}'
    assert samples[count] == 1


async def test_an_order_that_expired_while_the_feed_was_down_says_so(
    start_app: Callable[..., Awaitable[TestClient]],
) -> None:
    client = await start_app(binance_ws_url=f"ws://127.0.0.1:{free_port()}")  # nobody there
    log = EventLog(client.app)
    try:
        order = await place(client, order_size="1", price="1", timeout_s=0.5)
        await log.wait_for(order["order_id"], "expired")
        final = await fetch(client, order["order_id"])
        assert "no market data was received for LTCBTC" in final["reason"]
        assert "the upstream feed has been down since" in final["reason"]
    finally:
        await log.close()
