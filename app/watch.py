"""Terminal clients: follow an order over /ws (`watch`), or place one and follow it (`submit`).

Exit codes: 0 when the order is filled, 1 when it ends otherwise (expired, cancelled,
rejected), 2 when it cannot be followed (unknown order, refused request, no service).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TextIO

import aiohttp

from app.core.decimals import fmt

BAR_WIDTH = 30
FINAL = {"filled", "expired", "cancelled", "rejected"}


def progress_bar(order: dict[str, Any], filled: Decimal | None = None) -> str:
    size = Decimal(order["order_size"])
    filled = Decimal(order["filled_qty"]) if filled is None else filled
    done = int(BAR_WIDTH * filled / size) if size else 0
    percent = (filled / size * 100) if size else Decimal(0)
    average = f" avg {order['avg_price']}" if order.get("avg_price") and filled else ""
    return (
        f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] {percent:6.2f}%  "
        f"{fmt(filled)}/{order['order_size']}{average}"
    )


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class Watcher:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen: set[int] = set()
        self.filled = Decimal(0)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def fill(self, fill: dict[str, Any], order: dict[str, Any]) -> None:
        if fill["seq"] in self.seen:
            return
        self.seen.add(fill["seq"])
        self.filled += Decimal(fill["qty"])
        self.say(
            f"  fill #{fill['seq']:<3} {fill['qty']} @ {fill['price']}  "
            f"(update {fill['update_id']}, {fill['ts']})"
        )
        self.say(f"  {progress_bar(order, self.filled)}")

    def handle(self, message: dict[str, Any]) -> int | None:
        """Print one message; the exit code once the order is final, else None."""
        if message.get("type") == "error":
            self.say(f"error: {message['message']}")
            return 2
        if message.get("type") != "order":
            return None
        order, event = message["order"], message["event"]
        if event == "snapshot":
            price = "market" if order.get("price") is None else order["price"]
            self.say(
                f"order {order['order_id']}: {order['side']} {order['order_size']} "
                f"{order['symbol']} @ {price}, {order['status']}, "
                f"expires {order['expires_at']}"
            )
            for fill in order.get("fills") or []:
                self.fill(fill, order)
            if not order.get("fills"):
                self.say(f"  {progress_bar(order)}")
        elif event == "fill":
            self.fill(message["fill"], order)
        if order["status"] in FINAL:
            reason = f" ({order['reason']})" if order.get("reason") else ""
            self.say(f"{order['status']}{reason}: {progress_bar(order)}")
            return 0 if order["status"] == "filled" else 1
        return None


async def watch(base_url: str, order_id: str, *, token: str | None, out: TextIO) -> int:
    url = f"{base_url.rstrip('/').replace('http', 'ws', 1)}/ws"
    watcher = Watcher(out)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, params={"order_id": order_id}, headers=_headers(token)) as ws,
        ):
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                code = watcher.handle(json.loads(message.data))
                if code is not None:
                    return code
    except aiohttp.WSServerHandshakeError as exc:
        watcher.say(f"error: the service refused the websocket ({exc.status})")
        return 2
    except aiohttp.ClientError as exc:
        watcher.say(f"error: cannot reach {base_url}: {exc}")
        return 2
    watcher.say("error: the connection closed before the order ended")
    return 2


async def submit(
    base_url: str,
    body: dict[str, Any],
    *,
    token: str | None,
    follow: bool,
    out: TextIO,
    path: str = "/order/limit",
) -> int:
    """Place an order (POST `path`: /order/limit or /order/market) and maybe follow it."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{base_url.rstrip('/')}{path}", json=body, headers=_headers(token)
            ) as response,
        ):
            payload = await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        print(f"error: cannot reach {base_url}: {exc}", file=out)
        return 2
    if response.status not in (200, 202):
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        print(f"error {response.status}: {error.get('message', payload)}", file=out)
        return 2
    print(f"accepted {payload['order_id']} ({payload['status']})", file=out, flush=True)
    if not follow:
        return 0
    return await watch(base_url, payload["order_id"], token=token, out=out)


def default_url() -> str:
    import os

    host = os.environ.get("HTTP_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{os.environ.get('HTTP_PORT', '8080')}"
