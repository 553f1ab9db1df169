"""Fault injection: a busy database, SIGTERM under load, hostile websocket messages."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.emulator.server import BinanceEmulator
from app.keys import SETTINGS
from tests.helpers import stream
from tests.service_process import ServiceProcess

ORDER = {"symbol": "LTCBTC", "order_size": "1", "price": "5"}


async def test_a_busy_database_refuses_with_503_and_stores_nothing(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(db_busy_timeout_ms=50)
    kept = await client.post("/order/limit", json=ORDER)
    assert kept.status == 202
    blocker = sqlite3.connect(client.app[SETTINGS].database_path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        refused = await client.post("/order/limit", json={**ORDER, "client_order_id": "k1"})
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert "not stored" in (await refused.json())["error"]["message"]
    finally:
        blocker.rollback()
        blocker.close()
    listing = await (await client.get("/orders")).json()
    assert [o["order_id"] for o in listing["orders"]] == [(await kept.json())["order_id"]]
    again = await client.post("/order/limit", json={**ORDER, "client_order_id": "k1"})
    assert again.status == 202  # the refused key was never stored: it can be used now


@pytest.mark.slow
async def test_sigterm_under_load_keeps_every_answered_order(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    database = tmp_path / "orders.db"
    service = ServiceProcess(database, emulator.base_url, RATE_LIMIT_PER_S="0")
    await service.start()
    accepted: list[str] = []
    enough = asyncio.Event()  # SIGTERM lands while 16 clients are still sending

    async def client_loop(session: aiohttp.ClientSession) -> None:
        for _ in range(200):
            try:
                async with session.post(f"{service.url}/order/limit", json=ORDER) as response:
                    if response.status == 202:
                        accepted.append((await response.json())["order_id"])
                        if len(accepted) >= 100:
                            enough.set()
            except aiohttp.ClientError:
                return

    async with aiohttp.ClientSession() as session:
        clients = [asyncio.create_task(client_loop(session)) for _ in range(16)]
        await asyncio.wait_for(enough.wait(), 20)
        assert await service.terminate() == 0
        await asyncio.gather(*clients)
    stored = {row[0]: row[1] for row in sqlite3.connect(database).execute(
        "SELECT order_id, status FROM orders")}  # fmt: skip
    missing = [order_id for order_id in accepted if order_id not in stored]
    assert not missing, f"{len(missing)} answered orders are not on disk"
    restarted = ServiceProcess(database, emulator.base_url)
    await restarted.start()
    try:
        await emulator.wait_subscribed(stream("LTCBTC"))  # open orders resumed
        _, order = await restarted.request("GET", f"/orders/{accepted[0]}")
        assert order["status"] == "open"
        emulator.book_ticker("LTCBTC", "5", "1", "6", "1")
        await restarted.wait_for_order(accepted[0], lambda o: o["status"] == "filled")
    finally:
        await restarted.terminate()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
MESSAGES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"op": st.sampled_from(["subscribe", "unsubscribe", "x"])},
        optional={"order_id": JSON, "channel": st.sampled_from(["orders", "book", "x"]) | JSON,
                  "symbol": JSON},
    ),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages=st.lists(MESSAGES, min_size=1, max_size=8))
async def test_fuzzed_websocket_messages_never_break_the_socket(
    client: TestClient,
    messages: list[object],  # type: ignore[type-arg]
) -> None:
    async with client.ws_connect("/ws") as ws:
        for message in messages:
            await ws.send_str(json.dumps(message))
        await ws.send_json({"op": "subscribe", "channel": "orders"})
        async with asyncio.timeout(5):
            while True:  # every message got its answer; the last one is this ack
                reply = await ws.receive_json()
                assert reply["type"] in {"error", "subscribed", "unsubscribed", "order", "book"}
                if reply == {"type": "subscribed", "channel": "orders"} and not ws.closed:
                    break
    assert (await client.get("/healthz")).status == 200
