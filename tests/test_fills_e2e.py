"""GET /fills end to end: HTTP, the service, the engine, SQLite and the emulated Binance feed
(CONTRACT.md, "Paper account", last bullet): an owner's fills, newest first, as JSON or CSV.

Alice sells LTCBTC (filled in three updates, the last shared with Bob) and BTCUSDT (three
more); Bob has one fill. What the export shows is checked against GET /orders/{id}.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from app.emulator.server import BinanceEmulator
from tests.conftest import EventLog
from tests.helpers import stream
from tests.service_process import ServiceProcess

Start = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]

TOKENS = "alice:alice-secret-token,bob:bob-secret-token"
ALICE = {"Authorization": "Bearer alice-secret-token"}
BOB = {"Authorization": "Bearer bob-secret-token"}
CSV = {**ALICE, "Accept": "text/csv"}
HEADER = "order_id,symbol,side,seq,update_id,price,qty,fee,fee_asset,ts"


async def _place(client: TestClient, headers: dict[str, str], **fields: str) -> str:  # type: ignore[type-arg]
    response = await client.post("/order/limit", json={"side": "sell", **fields}, headers=headers)
    assert response.status == 202, await response.text()
    return str((await response.json())["order_id"])


class Trades:
    """The orders of the scenario, and what GET /orders/{id} says of their fills."""

    def __init__(self, client: TestClient, alice: list[str], bob: str) -> None:  # type: ignore[type-arg]
        self.client = client
        self.alice = alice  # LTCBTC, then BTCUSDT: their fills were stored in that order
        self.bob = bob

    async def rows(self, order_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        """The order's fills as export rows, oldest first."""
        order = await (await self.client.get(f"/orders/{order_id}", headers=headers)).json()
        return [
            {"order_id": order_id, "symbol": order["symbol"], "side": order["side"], **fill}
            for fill in order["fills"]
        ]

    async def alice_newest_first(self) -> list[dict[str, Any]]:
        rows = [row for order_id in self.alice for row in await self.rows(order_id, ALICE)]
        return rows[::-1]


@pytest.fixture
async def trades(start_app: Start, emulator: BinanceEmulator) -> AsyncIterator[Trades]:
    client = await start_app(api_tokens=TOKENS, allowed_origins="http://trusted.example")
    events = EventLog(client.app)
    try:
        ltc = await _place(client, ALICE, symbol="LTCBTC", order_size="3", price="0.0001")
        bob = await _place(client, BOB, symbol="LTCBTC", order_size="10", price="0.0003")
        btc = await _place(client, ALICE, symbol="BTCUSDT", order_size="1", price="1")
        await emulator.wait_subscribed(stream("LTCBTC"))
        emulator.book_ticker("LTCBTC", "0.00025", "1", "0.0005", "1")  # Alice: 1
        await events.wait_for(ltc, "fill")
        emulator.book_ticker("LTCBTC", "0.00025", "2", "0.0005", "1")  # grew by 1: Alice
        await events.wait_for(ltc, "fill", count=2)
        emulator.book_ticker("LTCBTC", "0.0004", "5", "0.0005", "1")  # Alice's last 1, Bob 4
        await events.wait_for(ltc, "filled")
        await events.wait_for(bob, "fill")
        await emulator.wait_subscribed(stream("BTCUSDT"))
        for n, (bid, qty) in enumerate([("1.5", "0.3"), ("1.5", "0.7"), ("1.6", "0.25")]):
            emulator.book_ticker("BTCUSDT", bid, qty, "2", "1")
            await events.wait_for(btc, "fill", count=n + 1)
        yield Trades(client, [ltc, btc], bob)
    finally:
        await events.close()


async def _json(client: TestClient, query: str, headers: dict[str, str]) -> dict[str, Any]:  # type: ignore[type-arg]
    response = await client.get(f"/fills{query}", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return dict(await response.json())


async def test_paging_through_an_owners_fills_shows_each_once_newest_first(
    trades: Trades,
) -> None:
    client = trades.client
    seen: list[dict[str, Any]] = []
    query = "?limit=2"
    while True:
        page = await _json(client, query, ALICE)
        seen.extend(page["fills"])
        if page["next_cursor"] is None:
            break
        assert len(page["fills"]) == 2
        query = f"?limit=2&cursor={page['next_cursor']}"
    expected = await trades.alice_newest_first()
    assert len(expected) == 6 and seen == expected  # no gap, no repeat, every field
    assert (await _json(client, "", ALICE)) == {"fills": expected, "next_cursor": None}
    # Exact decimals: 1 LTC sold at 0.00025, the fee 1 × 0.00025 × 0.001 in BTC.
    oldest = seen[-1]
    assert (oldest["price"], oldest["qty"], oldest["fee"], oldest["fee_asset"]) == (
        "0.00025", "1", "0.00000025", "BTC",
    )  # fmt: skip


async def test_an_owner_sees_only_its_own_fills_and_a_symbol_only_its_own(
    trades: Trades,
) -> None:
    client = trades.client
    bobs = await _json(client, "", BOB)
    assert bobs == {"fills": await trades.rows(trades.bob, BOB), "next_cursor": None}
    assert [(row["symbol"], row["qty"]) for row in bobs["fills"]] == [("LTCBTC", "4")]
    ltc = await _json(client, "?symbol=ltcbtc", ALICE)  # any case, as for orders
    assert ltc["fills"] == (await trades.rows(trades.alice[0], ALICE))[::-1]
    assert {row["order_id"] for row in ltc["fills"]} == {trades.alice[0]}
    none = await _json(client, "?symbol=ETHBTC", ALICE)
    assert none == {"fills": [], "next_cursor": None}


async def test_csv_has_the_header_the_same_rows_and_the_next_cursor_in_a_header(
    trades: Trades,
) -> None:
    client = trades.client
    first = await client.get("/fills?limit=4", headers=CSV)
    assert first.status == 200
    assert first.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = await first.text()
    assert text.split("\r\n")[0] == HEADER and text.endswith("\r\n")
    json_page = await _json(client, "?limit=4", ALICE)
    assert first.headers["X-Next-Cursor"] == json_page["next_cursor"]  # the same cursor
    second = await client.get(f"/fills?limit=4&cursor={first.headers['X-Next-Cursor']}",
                              headers=CSV)  # fmt: skip
    assert second.status == 200 and "X-Next-Cursor" not in second.headers  # the last page
    rows = [*csv.DictReader(io.StringIO(text)), *csv.DictReader(io.StringIO(await second.text()))]
    expected = await trades.alice_newest_first()
    # The values are the JSON's, as text: the same exact decimal strings.
    assert rows == [{field: str(value) for field, value in row.items()} for row in expected]
    assert rows[-1]["fee"] == "0.00000025"  # never 2.5E-7
    only_header = await client.get("/fills?symbol=ETHBTC", headers=CSV)
    assert await only_header.text() == HEADER + "\r\n"
    assert "X-Next-Cursor" not in only_header.headers


@pytest.mark.parametrize(
    ("accept", "is_csv"),
    [
        ("text/csv", True), ("text/csv; charset=utf-8", True), ("TEXT/CSV", True),
        ("application/json, text/csv", True), ("text/csv;q=0.5, application/json", False),
        ("text/csv;q=0", False), ("*/*", False), ("application/json", False), ("", False),
    ],
)  # fmt: skip
async def test_csv_only_when_asked_for(start_app: Start, accept: str, is_csv: bool) -> None:
    client = await start_app()
    response = await client.get("/fills", headers={"Accept": accept} if accept else {})
    assert response.status == 200
    expected = "text/csv; charset=utf-8" if is_csv else "application/json; charset=utf-8"
    assert response.headers["Content-Type"] == expected
    assert response.headers["Vary"] == "Accept"


async def test_a_token_is_required_when_tokens_are_set(trades: Trades) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Accept": "text/csv"}):
        response = await trades.client.get("/fills", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"),
        ("cursor=abc", "cursor"), ("cursor=-5", "cursor"), (f"cursor={2**63}", "cursor"),
        ("symbol=LTC-BTC", "symbol"), ("status=open", "status"),
    ],
)  # fmt: skip
async def test_a_bad_query_is_a_422_naming_the_field(
    start_app: Start, query: str, field: str
) -> None:
    client = await start_app()
    for headers in ({}, {"Accept": "text/csv"}):
        response = await client.get(f"/fills?{query}", headers=headers)
        assert response.status == 422
        error = (await response.json())["error"]
        assert error["code"] == "validation_error"
        assert [detail["field"] for detail in error["details"]] == [field]


async def test_limit_bounds_are_accepted(trades: Trades) -> None:
    assert len((await _json(trades.client, "?limit=1", ALICE))["fills"]) == 1
    assert len((await _json(trades.client, "?limit=500", ALICE))["fills"]) == 6


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(None, True), ("SAME", True), ("http://trusted.example", True),
     ("http://evil.example", False), ("null", False)],
)  # fmt: skip
async def test_the_origin_rules_are_the_order_endpoints(
    trades: Trades, origin: str | None, allowed: bool
) -> None:
    client = trades.client
    headers = dict(ALICE)
    if origin == "SAME":
        headers["Origin"] = f"http://{client.host}:{client.port}"
    elif origin is not None:
        headers["Origin"] = origin
    response = await client.get("/fills", headers=headers)
    assert response.status == (200 if allowed else 403)
    if not allowed:
        assert (await response.json())["error"]["code"] == "forbidden"


@pytest.mark.slow
async def test_an_api_process_exports_the_fills_an_executor_made(
    tmp_path: Path, postgres_store_url: str, redis_db_url: str, emulator: BinanceEmulator
) -> None:
    env = {"STORE_URL": postgres_store_url, "BUS_URL": redis_db_url, "RATE_LIMIT_PER_S": "0"}
    executor = ServiceProcess(tmp_path / "x.db", emulator.base_url, ROLE="executor", **env)
    api = ServiceProcess(tmp_path / "y.db", emulator.base_url, ROLE="api", **env)
    await executor.start()
    await api.start()
    try:
        status, order = await api.request("POST", "/order/limit", json={
            "symbol": "LTCBTC", "side": "sell", "order_size": "3", "price": "10"})  # fmt: skip
        assert status == 202, order
        await emulator.wait_subscribed(stream("LTCBTC"))
        emulator.book_ticker("LTCBTC", "10", "2", "11", "1")
        emulator.book_ticker("LTCBTC", "10", "3", "11", "1")
        final = await api.wait_for_order(
            order["order_id"], lambda o: o["status"] == "filled", timeout=10
        )
        status, page = await api.request("GET", "/fills?limit=1")
        assert status == 200 and page["next_cursor"] is not None
        status, rest = await api.request("GET", f"/fills?cursor={page['next_cursor']}")
        assert status == 200 and rest["next_cursor"] is None
        exported = [*page["fills"], *rest["fills"]]
        assert [(row["order_id"], row["seq"], row["qty"]) for row in exported] == [
            (order["order_id"], fill["seq"], fill["qty"]) for fill in final["fills"][::-1]
        ]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{api.url}/fills", headers={"Accept": "text/csv"}) as response,
        ):
            assert response.status == 200
            assert (await response.text()).split("\r\n")[0] == HEADER
    finally:
        await api.terminate()
        await executor.terminate()
