"""Terminal clients: follow an order over /ws (`watch`), or place one and follow it (`submit`).

Prices are shown rounded to the symbol's tick and quantities to its step (app/terminal/
precision.py); the API itself stays exact.

Exit codes: 0 when the order is filled, 1 when it ends otherwise (expired, cancelled,
rejected), 2 when it cannot be followed (unknown order, refused request, no service).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TextIO

import aiohttp

from app.terminal.api import EXIT_REFUSED, Api, ApiError
from app.terminal.orders import resolve_order_id
from app.terminal.precision import UNKNOWN, Precision, Precisions, amount

BAR_WIDTH = 30
FINAL = {"filled", "expired", "cancelled", "rejected"}


def progress_bar(
    order: dict[str, Any], filled: Decimal | None = None, precision: Precision = UNKNOWN
) -> str:
    size = Decimal(order["order_size"])
    filled = Decimal(order["filled_qty"]) if filled is None else filled
    done = int(BAR_WIDTH * filled / size) if size else 0
    percent = (filled / size * 100) if size else Decimal(0)
    like = [order.get("price")]
    average = (
        f" avg {precision.price(order['avg_price'], like)}"
        if order.get("avg_price") and filled
        else ""
    )
    size_text = order["order_size"]
    return (
        f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] {percent:6.2f}%  "
        f"{precision.qty(filled, [size_text])}/{precision.qty(size_text, [size_text])}{average}"
    )


def fees_text(order: dict[str, Any]) -> str:
    fees = order.get("fees")
    if not fees or Decimal(fees) == 0:
        return ""
    return f", fees {amount(fees)} {order.get('fee_asset') or ''}".rstrip()


class Watcher:
    def __init__(self, out: TextIO, precision: Precision = UNKNOWN) -> None:
        self.out = out
        self.precision = precision
        self.seen: set[int] = set()
        self.filled = Decimal(0)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def fill(self, fill: dict[str, Any], order: dict[str, Any]) -> None:
        if fill["seq"] in self.seen:
            return
        self.seen.add(fill["seq"])
        self.filled += Decimal(fill["qty"])
        p = self.precision
        fee = ""
        if fill.get("fee") is not None and Decimal(fill["fee"]):
            fee = f", fee {amount(fill['fee'])} {fill.get('fee_asset') or ''}".rstrip()
        self.say(
            f"  fill #{fill['seq']:<3} {p.qty(fill['qty'], [fill['qty']])} @ "
            f"{p.price(fill['price'], [fill['price']])}  "
            f"(update {fill['update_id']}, {fill['ts']}{fee})"
        )
        self.say(f"  {progress_bar(order, self.filled, p)}")

    def handle(self, message: dict[str, Any]) -> int | None:
        """Print one message; the exit code once the order is final, else None."""
        if message.get("type") == "error":
            self.say(f"error: {message['message']}")
            return EXIT_REFUSED
        if message.get("type") != "order":
            return None
        order, event = message["order"], message["event"]
        p = self.precision
        if event == "snapshot":
            price = order.get("price")
            tif = order.get("time_in_force")
            price_text = "market" if price is None else p.price(price, [price])
            if price is not None and tif:
                price_text += f" ({tif})"
            self.say(
                f"order {order['order_id']}: {order['side']} "
                f"{p.qty(order['order_size'], [order['order_size']])} "
                f"{order['symbol']} @ {price_text}, {order['status']}, "
                f"expires {order['expires_at']}"
            )
            for fill in order.get("fills") or []:
                self.fill(fill, order)
            if not order.get("fills"):
                self.say(f"  {progress_bar(order, precision=p)}")
        elif event == "fill":
            self.fill(message["fill"], order)
        if order["status"] in FINAL:
            reason = f" ({order['reason']})" if order.get("reason") else ""
            self.say(
                f"{order['status']}{reason}: {progress_bar(order, precision=p)}{fees_text(order)}"
            )
            return 0 if order["status"] == "filled" else 1
        return None


async def _follow(api: Api, order_id: str, watcher: Watcher) -> int:
    precisions = Precisions(api)
    order_id = await resolve_order_id(api, order_id)  # the tail `orders` shows will do
    async with api.session.ws_connect(
        api.ws_url, params={"order_id": order_id}, headers=api.headers
    ) as ws:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            payload = json.loads(message.data)
            if payload.get("event") == "snapshot":  # the symbol is known from here on
                watcher.precision = await precisions.of(payload["order"]["symbol"])
            code = watcher.handle(payload)
            if code is not None:
                return code
    watcher.say("error: the connection closed before the order ended")
    return EXIT_REFUSED


async def watch(base_url: str, order_id: str, *, token: str | None, out: TextIO) -> int:
    watcher = Watcher(out)
    try:
        async with aiohttp.ClientSession() as session:
            return await _follow(Api(session, base_url, token), order_id, watcher)
    except aiohttp.WSServerHandshakeError as exc:
        watcher.say(f"error {exc.status}: the service refused the websocket")
    except aiohttp.ClientError as exc:
        watcher.say(f"error: cannot reach {base_url}: {exc}")
    except ApiError as exc:
        watcher.say(str(exc))
    return EXIT_REFUSED


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
    async with aiohttp.ClientSession() as session:
        try:
            payload = await Api(session, base_url, token).post(path, body)
        except ApiError as exc:
            print(exc, file=out)
            return EXIT_REFUSED
    print(f"accepted {payload['order_id']} ({payload['status']})", file=out, flush=True)
    if not follow:
        return 0
    return await watch(base_url, payload["order_id"], token=token, out=out)
