"""The /ws endpoint: subscriptions, snapshot-then-deltas, book, errors, shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from app.emulator.server import BinanceEmulator
from app.keys import STORE
from tests.conftest import EventLog
from tests.helpers import partly_filled_sell, place, stream


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    return await asyncio.wait_for(ws.receive_json(), timeout)


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, predicate: Any, timeout: float = 5.0
) -> list[dict[str, Any]]:
    messages = []
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_json()
            messages.append(message)
            if predicate(message):
                return messages


def order_events(messages: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    return [
        (m["event"], m["fill"]["seq"] if "fill" in m else None)
        for m in messages
        if m["type"] == "order"
    ]


async def test_subscribe_to_an_order_gets_snapshot_fills_then_final(
    client: TestClient,
    emulator: BinanceEmulator,
    events: EventLog,  # type: ignore[type-arg]
) -> None:
    order = await partly_filled_sell(client, emulator, events)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"op": "subscribe", "order_id": order["order_id"]})
        assert await receive(ws) == {"type": "subscribed", "order_id": order["order_id"]}
        snapshot = await receive(ws)
        assert snapshot["type"] == "order" and snapshot["event"] == "snapshot"
        assert [f["qty"] for f in snapshot["order"]["fills"]] == ["2"]
        emulator.book_ticker("LTCBTC", "10.5", "3", "11", "1")
        messages = await receive_until(ws, lambda m: m.get("event") == "filled")
        assert order_events(messages) == [("fill", 2), ("filled", None)]
        fill = messages[0]
        assert fill["fill"] == {**fill["fill"], "seq": 2, "price": "10.5", "qty": "3"}
        assert fill["order"]["filled_qty"] == "5" and messages[1]["order"]["status"] == "filled"


async def test_query_string_shortcuts_subscribe_at_connect(
    client: TestClient,
    emulator: BinanceEmulator,  # type: ignore[type-arg]
) -> None:
    order = await place(client, order_size="5", price="10")
    url = f"/ws?order_id={order['order_id']}&channel=orders&book=ltcbtc"
    async with client.ws_connect(url) as ws:
        acks = [await receive(ws) for _ in range(4)]
        assert acks[0] == {"type": "subscribed", "order_id": order["order_id"]}
        assert acks[1]["event"] == "snapshot"
        assert {"type": "subscribed", "channel": "orders"} in acks
        assert {"type": "subscribed", "channel": "book", "symbol": "LTCBTC"} in acks
        await emulator.wait_subscribed(stream("LTCBTC"))
        emulator.book_ticker("LTCBTC", "9", "1.50", "9.5", "2")
        book = await receive_until(ws, lambda m: m["type"] == "book")
        assert book[-1] == {**book[-1], "symbol": "LTCBTC", "bid": "9", "bid_qty": "1.5",
                            "ask": "9.5", "ask_qty": "2"}  # fmt: skip


async def test_orders_channel_sees_every_order(
    client: TestClient,
    emulator: BinanceEmulator,  # type: ignore[type-arg]
) -> None:
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"op": "subscribe", "channel": "orders"})
        assert await receive(ws) == {"type": "subscribed", "channel": "orders"}
        first = await place(client, order_size="1", price="10")
        second = await place(client, symbol="ETHBTC", order_size="1", price="1")
        accepted = [await receive(ws) for _ in range(2)]
        assert [(m["event"], m["order"]["order_id"]) for m in accepted] == [
            ("accepted", first["order_id"]), ("accepted", second["order_id"]),
        ]  # fmt: skip
        await client.delete(f"/orders/{second['order_id']}")
        cancelled = await receive(ws)
        assert cancelled["event"] == "cancelled" and cancelled["order"]["status"] == "cancelled"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"op": "dance"}', '"op"'),
        ('{"op": "subscribe"}', "either"),
        ('{"op": "subscribe", "channel": "weather"}', "either"),
        ('{"op": "subscribe", "channel": "book"}', "symbol"),
        ('{"op": "subscribe", "channel": "book", "symbol": "BTC/USDT"}', "symbol"),
        ('{"op": "subscribe", "order_id": 42}', "order_id"),
        ('{"op": "subscribe", "order_id": "no-such-order"}', "not found"),
        ("[" * 15000, "nested too deeply"),  # under the 16 KiB message limit
        ('{"a":' * 3000, "nested too deeply"),
        # ASCII only: "ßß" would upper-case to "SSSS", a fullwidth "BTC" is not A-Z
        ('{"op": "subscribe", "channel": "book", "symbol": "\u00df\u00df"}', "symbol"),
        ('{"op": "subscribe", "channel": "book", "symbol": "\uff22\uff34\uff23"}', "symbol"),
        # Each message kind takes exactly its own keys, and says which one is wrong.
        ('{"op": "subscribe", "channel": "orders", "colour": "red"}', '"colour" is not expected'),
        ('{"op": "subscribe", "order_id": "x", "channel": "orders"}', '"channel" is not expected'),
        ('{"op": "dance", "channel": "orders"}', '"op" must be'),
        ('{"op": "dance", "order_id": "x"}', '"op" must be'),
        ('{"channel": "orders"}', '"op" is missing'),
        ('{"op": "subscribe", "channel": "order"}', "either"),  # the tag, not a channel
        ('{"op": "subscribe", "channel": ["orders"]}', "either"),
        ('{"op": "subscribe", "order_id": ""}', "order_id"),
        ('{"op": "subscribe", "order_id": "%s"}' % ("x" * 65), "order_id"),
        ('{"op": "subscribe", "channel": "book", "symbol": 42}', '"symbol" must be 2-20'),
    ],
)
async def test_bad_client_messages_get_an_error_and_the_socket_stays_open(
    client: TestClient,
    message: str,
    expected: str,  # type: ignore[type-arg]
) -> None:
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(message)
        error = await receive(ws)
        assert error["type"] == "error" and expected in error["message"]
        await ws.send_json({"op": "subscribe", "channel": "orders"})
        assert await receive(ws) == {"type": "subscribed", "channel": "orders"}


class SnapshotGate:
    """Holds the next store read (the /ws snapshot), before or after it reads the store."""

    def __init__(self, client: TestClient, *, hold_after_read: bool) -> None:  # type: ignore[type-arg]
        self.store = client.app[STORE]
        self.original = self.store.get
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.hold_after_read = hold_after_read

    async def get(self, order_id: str, *, with_fills: bool = True) -> Any:
        if self.reached.is_set():  # one-shot: later reads go straight through
            return await self.original(order_id, with_fills=with_fills)
        if self.hold_after_read:
            order = await self.original(order_id, with_fills=with_fills)
            self.reached.set()
            await self.release.wait()
            return order
        self.reached.set()
        await self.release.wait()
        return await self.original(order_id, with_fills=with_fills)


@pytest.mark.parametrize(
    "hold_after_read", [False, True], ids=["fill-before-read", "fill-after-read"]
)
async def test_subscribing_between_two_fills_loses_and_repeats_nothing(
    client: TestClient, emulator: BinanceEmulator, events: EventLog, hold_after_read: bool,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    order_id = (await partly_filled_sell(client, emulator, events, size="6", first_fill="1"))[
        "order_id"
    ]
    gate = SnapshotGate(client, hold_after_read=hold_after_read)
    monkeypatch.setattr(gate.store, "get", gate.get)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"op": "subscribe", "order_id": order_id})
        await gate.reached.wait()
        emulator.book_ticker("LTCBTC", "10", "3", "11", "1")  # fill 2, while subscribing
        await events.wait_for(order_id, "fill", count=2)
        gate.release.set()
        messages = await receive_until(ws, lambda m: m.get("event") == "snapshot")
        emulator.book_ticker("LTCBTC", "10.5", "10", "11", "1")  # fill 3 and the end
        messages += await receive_until(ws, lambda m: m.get("event") == "filled")
    assert messages[0] == {"type": "subscribed", "order_id": order_id}
    snapshot = messages[1]
    in_snapshot = [f["seq"] for f in snapshot["order"]["fills"]]
    pushed = [seq for event, seq in order_events(messages[2:]) if event == "fill"]
    assert in_snapshot + pushed == [1, 2, 3]  # each fill exactly once, in order
    assert in_snapshot == ([1] if hold_after_read else [1, 2])
    assert order_events(messages[2:])[-1] == ("filled", None)


async def test_an_order_final_in_its_snapshot_gets_no_more_events(
    client: TestClient,
    emulator: BinanceEmulator,
    events: EventLog,  # type: ignore[type-arg]
) -> None:
    order = await place(client, order_size="1", price="10")
    await client.delete(f"/orders/{order['order_id']}")
    async with client.ws_connect(f"/ws?order_id={order['order_id']}") as ws:
        await receive(ws)
        snapshot = await receive(ws)
        assert snapshot["order"]["status"] == "cancelled"
        await ws.send_json({"op": "unsubscribe", "order_id": order["order_id"]})
        assert await receive(ws) == {"type": "unsubscribed", "order_id": order["order_id"]}


async def test_shutdown_closes_every_socket_with_1001(client: TestClient) -> None:  # type: ignore[type-arg]
    ws = await client.ws_connect("/ws?channel=orders")
    await receive(ws)
    closing = asyncio.create_task(client.server.close())
    message = await asyncio.wait_for(ws.receive(), 5)
    await closing
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1001 and message.extra == "server shutdown"


async def test_book_subscriptions_upper_case_the_symbol_both_ways(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"op": "subscribe", "channel": "book", "symbol": "ltcBTC"})
        assert await receive(ws) == {"type": "subscribed", "channel": "book", "symbol": "LTCBTC"}
        await ws.send_json({"op": "unsubscribe", "channel": "book", "symbol": "ltcbtc"})
        assert await receive(ws) == {
            "type": "unsubscribed", "channel": "book", "symbol": "LTCBTC"
        }  # fmt: skip
        await ws.send_json({"op": "unsubscribe", "channel": "orders"})
        assert await receive(ws) == {"type": "unsubscribed", "channel": "orders"}


async def test_bad_query_shortcuts_are_errors_and_the_good_ones_still_subscribe(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    async with client.ws_connect("/ws?order_id=&channel=weather&book=BTC-USDT") as ws:
        replies = [await receive(ws) for _ in range(3)]
        assert [r["type"] for r in replies] == ["error"] * 3
        assert '"order_id"' in replies[0]["message"]
        assert '"channel" query parameter' in replies[1]["message"]
        assert '"symbol" must be' in replies[2]["message"]
        await ws.send_json({"op": "subscribe", "channel": "orders"})
        assert await receive(ws) == {"type": "subscribed", "channel": "orders"}


async def test_the_subscription_cap_counts_each_subscription_once(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(ws_max_subscriptions=1)
    async with client.ws_connect("/ws") as ws:
        orders = {"op": "subscribe", "channel": "orders"}
        book = {"op": "subscribe", "channel": "book", "symbol": "LTCBTC"}
        await ws.send_json(orders)
        await ws.send_json(orders)  # already held: no new place needed
        await ws.send_json(book)
        replies = [await receive(ws) for _ in range(3)]
        assert replies[:2] == [{"type": "subscribed", "channel": "orders"}] * 2
        assert replies[2]["type"] == "error" and "at most 1" in replies[2]["message"]
        await ws.send_json({"op": "unsubscribe", "channel": "orders"})
        await ws.send_json(book)
        await ws.send_json({**book, "symbol": "ltcbtc"})  # the same book, any case
        assert [await receive(ws) for _ in range(3)] == [
            {"type": "unsubscribed", "channel": "orders"},
            {"type": "subscribed", "channel": "book", "symbol": "LTCBTC"},
            {"type": "subscribed", "channel": "book", "symbol": "LTCBTC"},
        ]
        await ws.send_json({"op": "subscribe", "order_id": "any"})
        error = await receive(ws)
        assert error["type"] == "error" and "too many subscriptions" in error["message"]
