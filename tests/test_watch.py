"""The terminal watcher (`python -m app watch` / `submit --watch`) against the real app."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys

from aiohttp.test_utils import TestClient

from app.emulator.server import BinanceEmulator
from app.watch import progress_bar, submit, watch
from tests.conftest import EventLog
from tests.helpers import partly_filled_sell, place, stream


class Output(io.StringIO):
    """Captured terminal output that can be awaited."""

    def __init__(self) -> None:
        super().__init__()
        self._written = asyncio.Event()

    def write(self, text: str) -> int:
        self._written.set()
        return super().write(text)

    async def wait_for(self, text: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while text not in self.getvalue():
                self._written.clear()
                await self._written.wait()


def _base(client: TestClient) -> str:  # type: ignore[type-arg]
    return f"http://{client.host}:{client.port}"


async def test_watch_prints_each_fill_then_exits_0_when_filled(
    client: TestClient,
    emulator: BinanceEmulator,
    events: EventLog,  # type: ignore[type-arg]
) -> None:
    order = await partly_filled_sell(client, emulator, events)
    out = Output()
    watching = asyncio.create_task(watch(_base(client), order["order_id"], token=None, out=out))
    await out.wait_for("fill #1")
    emulator.book_ticker("LTCBTC", "10.5", "3", "11", "1")
    assert await asyncio.wait_for(watching, 5) == 0
    text = out.getvalue()
    assert "fill #1   2 @ 10" in text and "fill #2   3 @ 10.5" in text
    assert "[############..................]  40.00%  2/5" in text
    assert text.strip().splitlines()[-1].startswith("filled: [###")


async def test_watch_exits_1_when_the_order_expires(client: TestClient, events: EventLog) -> None:  # type: ignore[type-arg]
    order = await place(client, symbol="QUIETUSDT", order_size="5", price="10", timeout_s=0.3)
    out = io.StringIO()
    assert await watch(_base(client), order["order_id"], token=None, out=out) == 1
    assert "expired (expired: no market data" in out.getvalue()


async def test_watch_shows_a_market_order_as_market(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.post(
        "/order/market", json={"symbol": "QUIETUSDT", "side": "buy", "order_size": "2"}
    )
    order = await response.json()
    out = Output()
    watching = asyncio.create_task(watch(_base(client), order["order_id"], token=None, out=out))
    try:
        await out.wait_for("order ")
        assert f"order {order['order_id']}: buy 2 QUIETUSDT @ market, open" in out.getvalue()
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


async def test_the_submit_command_places_market_and_time_in_force_orders(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    placed = []
    for arguments in (
        ["ETHBTC", "buy", "1", "market"],
        ["ETHBTC", "sell", "2", "0.05", "--tif", "FOK"],
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "submit", *arguments, "--url", _base(client),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await process.communicate()
        assert process.returncode == 0, output
        order_id = output.decode().split()[1]  # "accepted <id> (open)"
        placed.append(await (await client.get(f"/orders/{order_id}")).json())
    market, fok = placed
    assert (market["type"], market["price"], market["time_in_force"]) == ("market", None, "IOC")
    assert (fok["type"], fok["price"], fok["time_in_force"]) == ("limit", "0.05", "FOK")


async def test_watch_exits_2_for_an_unknown_order(client: TestClient) -> None:  # type: ignore[type-arg]
    out = io.StringIO()
    assert await watch(_base(client), "no-such-order", token=None, out=out) == 2
    assert "not found" in out.getvalue()


async def test_submit_watch_follows_a_new_order(
    client: TestClient,
    emulator: BinanceEmulator,  # type: ignore[type-arg]
) -> None:
    out = Output()
    body = {"symbol": "ETHBTC", "side": "buy", "order_size": "1", "price": "0.05"}
    running = asyncio.create_task(submit(_base(client), body, token=None, follow=True, out=out))
    await emulator.wait_subscribed(stream("ETHBTC"))
    await out.wait_for("order ")  # the snapshot: the subscription is live
    emulator.book_ticker("ETHBTC", "0.04", "1", "0.049", "7")
    assert await asyncio.wait_for(running, 5) == 0
    assert "accepted " in out.getvalue() and "fill #1   1 @ 0.049" in out.getvalue()
    bad = io.StringIO()
    assert await submit(_base(client), {**body, "price": "-1"}, token=None, follow=True,
                        out=bad) == 2  # fmt: skip
    assert "error 422" in bad.getvalue() and "price" in bad.getvalue()


def test_cli_without_a_service_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "watch", "abc", "--url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "cannot reach" in result.stdout


def test_progress_bar() -> None:
    order = {"order_size": "4", "filled_qty": "1", "avg_price": "2"}
    assert progress_bar(order) == "[#######.......................]  25.00%  1/4 avg 2"
