"""Time in force, market orders and fees end to end: HTTP, the service, the engine,
SQLite and the emulated Binance feed (CONTRACT.md, "Paper account")."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient

from app.core.domain import StreamKind
from app.emulator.exchange_info import default_exchange_symbols
from app.emulator.server import BinanceEmulator
from app.keys import SETTINGS
from tests.conftest import EventLog
from tests.helpers import fetch, place, stream

D = Decimal


async def market(client: TestClient, expect: int = 202, **fields: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    response = await client.post("/order/market", json=fields)
    payload = await response.json()
    assert response.status == expect, payload
    return payload


async def _quote_known(
    client: TestClient,  # type: ignore[type-arg]
    emulator: BinanceEmulator,
    events: EventLog,
    symbol: str,
    bid: tuple[str, str],
    ask: tuple[str, str],
) -> None:
    """Make `bid`/`ask` the symbol's current quote, known to its worker: an order that
    never fills keeps the worker (and its quote) alive, and one that fills on the quote
    shows it was applied."""
    await place(client, symbol=symbol, side="buy", order_size="1", price="0.00000001")
    probe = await place(client, symbol=symbol, side="sell", order_size="0.001", price=bid[0])
    await emulator.wait_subscribed(stream(symbol))
    emulator.book_ticker(symbol, bid[0], bid[1], ask[0], ask[1])
    await events.wait_for(probe["order_id"], "filled")


async def test_a_market_buy_fills_at_the_ask_and_its_rest_expires(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    await _quote_known(client, emulator, events, "BTCUSDT", ("61800", "2"), ("61850.5", "0.3"))
    order = await market(client, symbol="btcusdt", side="buy", order_size="0.5")
    assert order["type"] == "market" and order["price"] is None
    assert order["time_in_force"] == "IOC" and order["status"] == "open"
    assert order["fees"] == "0" and order["fee_asset"] == "BTC"
    await events.wait_for(order["order_id"], "expired")
    final = await fetch(client, order["order_id"])
    assert final["status"] == "expired" and final["price"] is None
    assert final["reason"] == (
        "expired: market order (IOC): the quote did not fill the rest of the order"
    )
    assert [(f["price"], f["qty"], f["fee"], f["fee_asset"]) for f in final["fills"]] == [
        ("61850.5", "0.3", "0.0003", "BTC")
    ]
    assert final["filled_qty"] == "0.3" and final["remaining_qty"] == "0.2"
    assert final["fees"] == "0.0003"
    # The expiry is pushed after the fill, and both were committed by then.
    assert [e.kind for e in events.of(order["order_id"])] == ["accepted", "fill", "expired"]
    listed = await client.get("/orders", params={"symbol": "BTCUSDT", "status": "expired"})
    (shown,) = (await listed.json())["orders"]
    assert shown["order_id"] == order["order_id"] and shown["type"] == "market"
    assert shown["filled_qty"] == "0.3" and "fills" not in shown


async def test_a_market_sell_takes_the_bid_and_pays_its_fee_in_the_quote_asset(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    await _quote_known(client, emulator, events, "ETHBTC", ("0.05", "10"), ("0.051", "10"))
    order = await market(client, symbol="ETHBTC", side="sell", order_size="4")
    await events.wait_for(order["order_id"], "filled")
    final = await fetch(client, order["order_id"])
    assert final["status"] == "filled" and final["fee_asset"] == "BTC"
    # The probe took 0.001 of the 10 shown at 0.05: 4 are left for this order.
    assert [(f["price"], f["qty"], f["fee"]) for f in final["fills"]] == [("0.05", "4", "0.0002")]
    assert final["fees"] == "0.0002"


async def test_an_ioc_with_no_quote_yet_waits_for_the_first_then_expires(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await place(
        client, symbol="LTCBTC", side="sell", order_size="10", price="0.002", time_in_force="ioc"
    )
    assert order["time_in_force"] == "IOC" and order["type"] == "limit"
    assert order["fee_asset"] == "BTC"
    await emulator.wait_subscribed(stream("LTCBTC"))
    assert (await fetch(client, order["order_id"]))["status"] == "open"  # waiting
    emulator.book_ticker("LTCBTC", "0.0025", "4", "0.0026", "10")
    await events.wait_for(order["order_id"], "expired")
    final = await fetch(client, order["order_id"])
    assert final["reason"] == "expired: IOC: the quote did not fill the rest of the order"
    # A sell pays in the quote asset: 4 x 0.0025 x 0.001.
    assert [(f["price"], f["qty"], f["fee"]) for f in final["fills"]] == [
        ("0.0025", "4", "0.00001")
    ]
    assert [e.kind for e in events.of(order["order_id"])] == ["accepted", "fill", "expired"]


async def test_a_fok_that_the_quote_cannot_fill_expires_with_no_fill(
    client: TestClient, emulator: BinanceEmulator, events: EventLog
) -> None:
    fok = await place(
        client, symbol="LTCBTC", side="buy", order_size="5", price="0.0026", time_in_force="FOK"
    )
    behind = await place(client, symbol="LTCBTC", side="buy", order_size="5", price="0.0026")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "0.0025", "4", "0.0026", "3")  # 3 < 5
    await events.wait_for(fok["order_id"], "expired")
    final = await fetch(client, fok["order_id"])
    assert final["status"] == "expired" and final["fills"] == []
    assert final["filled_qty"] == "0" and final["fees"] == "0"
    assert final["reason"] == "expired: FOK: the quote could not fill the whole order"
    assert [e.kind for e in events.of(fok["order_id"])] == ["accepted", "expired"]
    # The liquidity it did not take went to the order behind it.
    await events.wait_for(behind["order_id"], "fill")
    assert (await fetch(client, behind["order_id"]))["filled_qty"] == "3"
    # A FOK that the current quote can fill fills at once, entirely.
    emulator.book_ticker("LTCBTC", "0.0025", "4", "0.0026", "9")  # 6 new at 0.0026
    await events.wait_for(behind["order_id"], "filled")
    whole = await place(
        client, symbol="LTCBTC", side="buy", order_size="4", price="0.0026", time_in_force="FOK"
    )
    await events.wait_for(whole["order_id"], "filled")
    assert [(f["qty"], f["fee"]) for f in (await fetch(client, whole["order_id"]))["fills"]] == [
        ("4", "0.004")
    ]


async def test_fees_at_the_configured_rate_are_exact_on_each_fill_and_in_total(
    start_app: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    emulator: BinanceEmulator,
) -> None:
    client = await start_app(fee_rate=D("0.00075"))
    events = EventLog(client.app)
    try:
        order = await place(client, symbol="BTCUSDT", order_size="25", price="42")
        assert order["fee_asset"] == "USDT" and order["time_in_force"] == "GTT"
        await emulator.wait_subscribed(stream("BTCUSDT"))
        emulator.book_ticker("BTCUSDT", "42", "5", "43", "1")
        emulator.book_ticker("BTCUSDT", "42.5", "30", "43", "1")
        await events.wait_for(order["order_id"], "filled")
        final = await fetch(client, order["order_id"])
        # 5 x 42 x 0.00075 and 20 x 42.5 x 0.00075, exactly.
        assert [(f["qty"], f["fee"], f["fee_asset"]) for f in final["fills"]] == [
            ("5", "0.1575", "USDT"), ("20", "0.6375", "USDT"),
        ]  # fmt: skip
        assert final["fees"] == "0.795"
        fill_events = [e for e in events.of(order["order_id"]) if e.kind == "fill"]
        assert [e.fill.fee for e in fill_events if e.fill] == [D("0.1575"), D("0.6375")]
        # Stored as exact text, with the order's total.
        db = sqlite3.connect(str(client.app[SETTINGS].database_path))
        assert db.execute("SELECT fee, fee_asset FROM fills ORDER BY seq").fetchall() == [
            ("0.1575", "USDT"), ("0.6375", "USDT"),
        ]  # fmt: skip
        assert db.execute("SELECT fees FROM orders").fetchall() == [("0.795",)]
    finally:
        await events.close()


async def test_market_and_time_in_force_requests_are_validated(client: TestClient) -> None:
    response = await client.post(
        "/order/limit",
        json={"symbol": "BTCUSDT", "order_size": "1", "price": "1", "time_in_force": "GTC"},
    )
    assert response.status == 422
    body = await response.json()
    assert [d["field"] for d in body["error"]["details"]] == ["time_in_force"]
    for fields, bad in (
        ({"symbol": "BTCUSDT", "order_size": "1"}, ["side"]),
        ({"symbol": "BTCUSDT", "side": "buy", "order_size": "1", "price": "5"}, ["price"]),
        ({"symbol": "BTCUSDT", "side": "buy", "order_size": "0"}, ["order_size"]),
        ({"symbol": "BTCUSDT", "side": "buy", "order_size": "1", "time_in_force": "FOK"},
         ["time_in_force"]),
    ):  # fmt: skip
        response = await client.post("/order/market", json=fields)
        assert response.status == 422, fields
        details = (await response.json())["error"]["details"]
        assert [d["field"] for d in details] == bad
    listed = await (await client.get("/orders")).json()
    assert listed["orders"] == []  # a rejected request stores nothing


async def test_idempotency_covers_type_and_time_in_force(client: TestClient) -> None:
    first = await market(
        client, symbol="BTCUSDT", side="buy", order_size="1", client_order_id="m-1"
    )
    again = await client.post(
        "/order/market",
        json={"symbol": "BTCUSDT", "side": "buy", "order_size": "1", "client_order_id": "m-1"},
    )
    assert again.status == 200 and (await again.json())["order_id"] == first["order_id"]
    as_limit = await client.post(
        "/order/limit",
        json={"symbol": "BTCUSDT", "side": "buy", "order_size": "1", "price": "1",
              "client_order_id": "m-1"},
    )  # fmt: skip
    assert as_limit.status == 409
    fields = [d["field"] for d in (await as_limit.json())["error"]["details"]]
    assert fields == ["type", "price", "time_in_force"]
    await place(client, symbol="BTCUSDT", order_size="1", price="1", client_order_id="l-1")
    ioc = await client.post(
        "/order/limit",
        json={"symbol": "BTCUSDT", "side": "sell", "order_size": "1", "price": "1",
              "client_order_id": "l-1", "time_in_force": "IOC"},
    )  # fmt: skip
    assert ioc.status == 409
    assert [d["field"] for d in (await ioc.json())["error"]["details"]] == ["time_in_force"]


async def test_market_orders_need_a_token_and_count_against_the_limits(
    start_app: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
) -> None:
    client = await start_app(api_tokens="alice:alice-token", rate_limit_per_s=3, max_open_orders=1)
    body = {"symbol": "BTCUSDT", "side": "buy", "order_size": "1"}
    alice = {"Authorization": "Bearer alice-token"}
    assert (await client.post("/order/market", json=body)).status == 401
    refused = await client.post("/order/market", json=body, headers={"Origin": "http://evil"})
    assert refused.status in (401, 403)
    placed = await client.post("/order/market", json=body, headers=alice)
    assert placed.status == 202  # open: it waits for a first quote
    capped = await client.post("/order/market", json=body, headers=alice)
    assert capped.status == 429
    assert (await capped.json())["error"]["code"] == "too_many_open_orders"
    # Refused requests are order requests too: the 4th in a second is rate limited.
    assert (await client.post("/order/market", json={}, headers=alice)).status == 422
    limited = await client.post("/order/market", json=body, headers=alice)
    assert limited.status == 429 and "Retry-After" in limited.headers


async def test_in_depth_mode_a_waiting_market_sell_sweeps_every_shown_bid(
    start_app: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    emulator: BinanceEmulator,
) -> None:
    client = await start_app(market_stream="depth5")
    events = EventLog(client.app)
    try:
        order = await market(client, symbol="LTCBTC", side="sell", order_size="10")
        await emulator.wait_subscribed(stream("LTCBTC", StreamKind.DEPTH5))
        emulator.depth(
            "LTCBTC", bids=[("0.0025", "2"), ("0.0024", "3"), ("0.0001", "1")],
            asks=[("0.0026", "5")], levels=5,
        )  # fmt: skip
        await events.wait_for(order["order_id"], "expired")
        final = await fetch(client, order["order_id"])
        # Best bid first, down to the last shown level (no limit); then the rest expires.
        assert [(f["price"], f["qty"], f["fee"]) for f in final["fills"]] == [
            ("0.0025", "2", "0.000005"), ("0.0024", "3", "0.0000072"),
            ("0.0001", "1", "0.0000001"),
        ]  # fmt: skip
        assert final["filled_qty"] == "6" and final["fees"] == "0.0000123"
        assert final["fee_asset"] == "BTC"
    finally:
        await events.close()


async def test_the_websocket_pushes_the_fill_with_its_fee_then_the_expiry(
    client: TestClient,  # type: ignore[type-arg]
    emulator: BinanceEmulator,
) -> None:
    async with client.ws_connect("/ws?channel=orders") as ws:
        assert (await ws.receive_json())["type"] == "subscribed"
        order = await market(client, symbol="ETHUSDT", side="buy", order_size="2")
        await emulator.wait_subscribed(stream("ETHUSDT"))
        emulator.book_ticker("ETHUSDT", "2999", "5", "3000.5", "1.5")
        messages = []
        while not messages or messages[-1]["event"] != "expired":
            message = await ws.receive_json(timeout=5)
            if message.get("type") == "order" and message["order"]["order_id"] == order["order_id"]:
                messages.append(message)
    assert [m["event"] for m in messages] == ["accepted", "fill", "expired"]
    fill = messages[1]
    assert fill["fill"]["fee"] == "0.0015" and fill["fill"]["fee_asset"] == "ETH"
    assert fill["order"]["fees"] == "0.0015" and fill["order"]["type"] == "market"
    expired = messages[2]["order"]
    assert expired["price"] is None and expired["time_in_force"] == "IOC"
    assert expired["status"] == "expired" and expired["filled_qty"] == "1.5"


async def test_a_market_order_gets_the_market_filters(
    client: TestClient,  # type: ignore[type-arg]
    exchange: BinanceEmulator,
) -> None:
    exchange.exchange_symbols = default_exchange_symbols()  # as Binance lists them
    exchange.list_every_symbol = False
    body = {"symbol": "BTCUSDT", "side": "buy"}
    refused = await client.post("/order/market", json={**body, "order_size": "0.000015"})
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "filter_failure" and error["message"].startswith("LOT_SIZE: ")
    unknown = await client.post(
        "/order/market", json={"symbol": "NOSUCHCOIN", "side": "sell", "order_size": "1"}
    )
    assert unknown.status == 422
    assert (await unknown.json())["error"]["code"] == "unknown_symbol"
    accepted = await client.post("/order/market", json={**body, "order_size": "0.00002"})
    assert accepted.status == 202  # notional: no quote known yet, so it cannot be valued
    listed = await (await client.get("/orders")).json()
    assert [o["order_size"] for o in listed["orders"]] == ["0.00002"]


async def test_a_market_orders_notional_is_checked_at_the_best_price_once_one_is_known(
    client: TestClient,  # type: ignore[type-arg]
    exchange: BinanceEmulator,
    emulator: BinanceEmulator,
) -> None:
    from app.emulator.exchange_info import symbol_entry

    exchange.list_every_symbol = False
    exchange.register_symbol(symbol_entry(  # NOTIONAL: at least 5, applied to market orders
        "NOTEUSDT", "NOTE", "USDT", tick_size="0.01", step_size="0.001", min_notional="5",
    ))  # fmt: skip
    body = {"symbol": "NOTEUSDT", "side": "buy", "order_size": "0.01"}
    # No quote known yet: the notional cannot be valued, so it is not checked.
    unchecked = await market(client, **body)
    events = EventLog(client.app)
    try:
        await place(client, symbol="NOTEUSDT", side="buy", order_size="1", price="10")
        probe = await place(client, symbol="NOTEUSDT", side="sell", order_size="0.1", price="99")
        await emulator.wait_subscribed(stream("NOTEUSDT"))
        emulator.book_ticker("NOTEUSDT", "99", "1", "100", "1")
        await events.wait_for(probe["order_id"], "filled")
        await events.wait_for(unchecked["order_id"], "filled")  # on the same quote
    finally:
        await events.close()
    # Now the ask is 100: 0.01 × 100 = 1 < 5 is refused, naming the filter and the field.
    refused = await market(client, expect=422, **body)
    assert refused["error"]["code"] == "filter_failure"
    assert refused["error"]["message"].startswith("NOTIONAL: ")
    assert refused["error"]["details"][0]["field"] == "order_size"
    # A sell is valued at the bid: 0.05 × 99 = 4.95 < 5 refused, 0.06 × 99 accepted.
    await market(client, expect=422, symbol="NOTEUSDT", side="sell", order_size="0.05")
    await market(client, symbol="NOTEUSDT", side="sell", order_size="0.06")
    await market(client, symbol="NOTEUSDT", side="buy", order_size="0.05")  # 0.05 × 100 = 5
