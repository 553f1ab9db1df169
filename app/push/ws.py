"""GET /ws: live order events and book quotes (CONTRACT.md, "WebSocket /ws")."""

from __future__ import annotations

import json
from typing import Any, assert_never

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from app.http.auth import AUTH
from app.http.errors import ApiError
from app.http.origin import origin_allowed
from app.keys import PUSH_HUB, SETTINGS, STORE
from app.push import messages
from app.push.client import PushClient
from app.push.hub import encode
from app.push.messages import AccountChannel, BookChannel, OrdersChannel, OrderSubscription
from app.schemas import order_json

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

HEARTBEAT_S = 20.0
MAX_CLIENT_MESSAGE = 16 * 1024
MAX_QUEUE = 2048


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


class _Session:
    """One connected client: parses its messages and manages its subscriptions."""

    def __init__(self, request: web.Request, client: PushClient) -> None:
        self.app = request.app
        self.client = client
        self.hub = request.app[PUSH_HUB]
        self.store = request.app[STORE]
        self.max_subscriptions = request.app[SETTINGS].ws_max_subscriptions

    def room_for_one_more(self) -> bool:
        client = self.client
        used = (
            len(client.orders) + len(client.books) + client.orders_channel + client.account_channel
        )
        if used < self.max_subscriptions:
            return True
        self.error(f"too many subscriptions on this socket: at most {self.max_subscriptions}")
        return False

    def error(self, message: str) -> None:
        self.client.send(encode({"type": "error", "message": message}))

    async def handle_text(self, text: str) -> None:
        try:
            # The stdlib parser: client messages are small and rare, and it takes any
            # valid JSON (orjson refuses integers beyond 64 bits).
            message = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            self.error("message is not valid JSON")
            return
        except RecursionError:
            self.error("message is nested too deeply")
            return
        if not isinstance(message, dict):
            self.error("message must be a JSON object")
            return
        await self.handle(message)

    async def handle(self, raw: object) -> None:
        try:
            message = messages.parse(raw)
        except messages.BadMessage as exc:
            self.error(str(exc))
            return
        match message:
            case OrderSubscription(op="subscribe"):
                if message.order_id in self.client.orders or self.room_for_one_more():
                    await self.subscribe_order(message.order_id)
            case OrderSubscription():
                self.hub.unwatch_order(self.client, message.order_id)
                self.client.send(encode({"type": "unsubscribed", "order_id": message.order_id}))
            case OrdersChannel(op="subscribe"):
                if not self.client.orders_channel and not self.room_for_one_more():
                    return
                self.hub.watch_orders_channel(self.client)
                self.client.send(encode({"type": "subscribed", "channel": "orders"}))
            case OrdersChannel():
                self.hub.unwatch_orders_channel(self.client)
                self.client.send(encode({"type": "unsubscribed", "channel": "orders"}))
            case AccountChannel(op="subscribe"):
                if not self.client.account_channel and not self.room_for_one_more():
                    return
                self.client.send(encode({"type": "subscribed", "channel": "account"}))
                self.hub.watch_account(self.client)  # then the account, as it is now
            case AccountChannel():
                self.hub.unwatch_account(self.client)
                self.client.send(encode({"type": "unsubscribed", "channel": "account"}))
            case BookChannel(op="subscribe"):
                if message.symbol not in self.client.books and not self.room_for_one_more():
                    return
                self.client.send(
                    encode({"type": "subscribed", "channel": "book", "symbol": message.symbol})
                )
                self.hub.watch_book(self.client, message.symbol)
            case BookChannel():
                self.hub.unwatch_book(self.client, message.symbol)
                self.client.send(
                    encode({"type": "unsubscribed", "channel": "book", "symbol": message.symbol})
                )
            case _:
                assert_never(message)

    async def subscribe_order(self, order_id: str) -> None:
        if order_id in self.client.orders:
            self.error(f"already subscribed to order {order_id}")
            return
        # Interest first, snapshot second: nothing committed in between can be missed.
        self.hub.watch_order(self.client, order_id)
        order = await self.store.get(order_id)  # the order and its fills, one state
        if order is None or order.owner != self.client.owner:  # the same answer for both
            self.hub.unwatch_order(self.client, order_id)
            self.error(f"order {order_id} not found")
            return
        self.client.send(encode({"type": "subscribed", "order_id": order_id}))
        snapshot = order_json(order, with_fills=True)
        self.client.send(encode({"type": "order", "event": "snapshot", "order": snapshot}))
        self.hub.start_order(
            self.client, order_id, fill_seq=order.fill_count, final=order.status.is_final
        )

    async def query_shortcuts(self, query: Any) -> None:
        if "order_id" in query:
            await self.handle({"op": "subscribe", "order_id": query["order_id"]})
        if query.get("channel") in ("orders", "account"):
            await self.handle({"op": "subscribe", "channel": query["channel"]})
        elif "channel" in query:
            self.error('the "channel" query parameter must be "orders" or "account"')
        if "book" in query:
            await self.handle({"op": "subscribe", "channel": "book", "symbol": query["book"]})


@routes.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    owner = request.app[AUTH].owner(request, allow_query=True)
    if not origin_allowed(request):
        raise ApiError(403, "this Origin may not open the websocket")
    settings = request.app[SETTINGS]
    hub = request.app[PUSH_HUB]
    if hub.connections_of(owner) >= settings.ws_max_connections_per_owner:
        raise ApiError(
            429,
            f"too many websocket connections: at most {settings.ws_max_connections_per_owner}",
            headers={"Retry-After": "5"},
        )
    # No permessage-deflate: messages are small, and compressing each one once per client
    # is the largest cost of fanning an event out to many clients.
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_S, max_msg_size=MAX_CLIENT_MESSAGE, compress=False
    )
    await ws.prepare(request)
    transport = request.transport
    client = PushClient(
        ws,
        owner,
        max_queue=MAX_QUEUE,
        abort=transport.abort if transport else None,
        transport=transport,
    )
    hub.add_client(client)
    client.start()
    session = _Session(request, client)
    bound = log.bind(owner=owner, peer=request.remote)
    bound.info("ws.connected")
    try:
        await session.query_shortcuts(request.query)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await session.handle_text(message.data)
            elif message.type is WSMsgType.BINARY:
                session.error("send JSON text frames")
            if client.closing:
                break
    finally:
        hub.remove_client(client)
        if not client.closing:
            client.close(WSCloseCode.OK, "bye")
        await client.finish()
        bound.info("ws.disconnected", code=client.close_code)
    return ws


async def close_all(app: web.Application) -> None:
    """on_shutdown: every socket is closed with 1001 (going away)."""
    for client in list(app[PUSH_HUB].clients):
        client.close(WSCloseCode.GOING_AWAY, "server shutdown")
        await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
