"""The page's server side: recent top of book per symbol and a symbol's tick and step."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal as D

import pytest
from aiohttp.test_utils import TestClient

from app.adapters.binance.exchange_info import SymbolLookup
from app.application import create_app
from app.core.domain import BookUpdate
from app.core.filters import LotSize, PriceFilter, SymbolInfo
from app.emulator.exchange_info import symbol_entry
from app.emulator.server import BinanceEmulator
from app.http.book_history import BookHistory
from app.http.pages import market_kind
from app.http.symbols import SYMBOL_LOOKUPS


def quote(symbol: str, uid: int, bid: str, ask: str, at: float) -> BookUpdate:
    return BookUpdate(symbol, uid, ((D(bid), D("1")),), ((D(ask), D("1")),), at)


def test_history_keeps_the_first_quote_of_each_second_for_the_window() -> None:
    history = BookHistory(seconds=3)
    history.on_update(quote("BTCUSDT", 1, "100", "101", 1000.2))
    history.on_update(quote("BTCUSDT", 2, "99", "100", 1000.9))  # same second: not kept
    history.on_update(quote("BTCUSDT", 3, "98", "99", 1001.1))
    history.on_update(quote("BTCUSDT", 4, "97", "98", 1003.5))
    history.on_update(quote("BTCUSDT", 5, "96", "97", 1004.0))
    points = history.points("BTCUSDT", now=1004.0)
    # At most 3 points (the ring), and none older than 3 s before now.
    assert [(p.bid, p.ask) for p in points] == [
        (D("98"), D("99")),
        (D("97"), D("98")),
        (D("96"), D("97")),
    ]
    assert [p.bid for p in history.points("BTCUSDT", now=1005.5)] == [D("97"), D("96")]
    assert history.points("ETHUSDT", now=1004.5) == []


def test_history_drops_the_symbol_quoted_least_recently() -> None:
    history = BookHistory(seconds=10, max_symbols=2)
    history.on_update(quote("AAA", 1, "1", "2", 10.0))
    history.on_update(quote("BBB", 1, "1", "2", 10.0))
    history.on_update(quote("AAA", 2, "1", "2", 11.0))  # AAA is now the most recent
    history.on_update(quote("CCC", 1, "1", "2", 12.0))
    assert history.symbols == 2
    assert history.points("BBB", now=12.0) == []
    assert len(history.points("AAA", now=12.0)) == 2


def test_a_one_sided_book_has_null_on_the_empty_side() -> None:
    history = BookHistory()
    history.on_update(BookUpdate("X", 1, ((D("5.10"), D("1")),), (), 50.0))
    (point,) = history.points("X", now=50.0)
    assert point.to_json()["bid"] == "5.1" and point.to_json()["ask"] is None


async def test_book_history_is_served_for_a_page_opened_late(
    client: TestClient,  # type: ignore[type-arg]
    emulator: BinanceEmulator,
) -> None:
    async with client.ws_connect("/ws?book=BTCUSDT") as ws:
        await emulator.wait_subscribed("btcusdt@bookTicker")
        emulator.book_ticker("BTCUSDT", "100.5", "1", "100.51", "2")
        while (await ws.receive_json())["type"] != "book":
            pass
    response = await client.get("/book/btcusdt/history")
    assert response.status == 200
    body = await response.json()
    assert body["symbol"] == "BTCUSDT" and body["seconds"] > 0
    (point,) = body["points"]
    assert point["bid"] == "100.5" and point["ask"] == "100.51"
    at = point["ts"].replace("Z", "+00:00")
    assert abs(datetime.fromisoformat(at).timestamp() - time.time()) < 30
    empty = await (await client.get("/book/ETHUSDT/history")).json()
    assert empty["points"] == []
    bad = await client.get("/book/not-a-symbol!/history")
    assert bad.status == 422
    assert (await bad.json())["error"]["details"][0]["field"] == "symbol"


class FakeLookups:
    def __init__(self, answers: dict[str, SymbolLookup]) -> None:
        self.answers = answers

    async def lookup(self, symbol: str) -> SymbolLookup:
        return self.answers.get(symbol, SymbolLookup("unknown"))


async def test_symbol_info_gives_tick_and_step(aiohttp_client, make_settings) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings())
    info = SymbolInfo(
        "BTCUSDT", "TRADING", "BTC", "USDT",
        price_filter=PriceFilter(D("0.01"), D("1000000"), D("0.01000000")),
        lot_size=LotSize("LOT_SIZE", D("0.00001"), D("9000"), D("0.00001000")),
    )  # fmt: skip
    app[SYMBOL_LOOKUPS] = FakeLookups(
        {"BTCUSDT": SymbolLookup("ok", info), "ETHUSDT": SymbolLookup("unavailable", reason="x")}
    )
    client = await aiohttp_client(app)
    body = await (await client.get("/symbols/btcusdt")).json()
    assert body == {
        "symbol": "BTCUSDT", "status": "TRADING", "base_asset": "BTC", "quote_asset": "USDT",
        "tick_size": "0.01", "step_size": "0.00001", "min_qty": "0.00001", "min_notional": None,
        "source": "exchange_info",
    }  # fmt: skip
    unavailable = await (await client.get("/symbols/ETHUSDT")).json()
    assert unavailable["source"] == "unavailable" and unavailable["tick_size"] is None
    assert unavailable["base_asset"] == "ETH" and unavailable["quote_asset"] == "USDT"
    unknown = await client.get("/symbols/NOPE")
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "unknown_symbol"


async def test_symbol_info_is_read_through_the_intake_s_exchange_info(
    client: TestClient,  # type: ignore[type-arg]
    exchange: BinanceEmulator,
) -> None:
    exchange.register_symbol(symbol_entry("BTCUSDT", "BTC", "USDT"))  # Binance's filters
    body = await (await client.get("/symbols/BTCUSDT")).json()
    assert body["source"] == "exchange_info"
    assert (body["tick_size"], body["step_size"]) == ("0.01", "0.00001")
    assert body["base_asset"] == "BTC" and body["quote_asset"] == "USDT"
    await client.post("/order/limit", json={"symbol": "BTCUSDT", "order_size": "1", "price": "100"})
    # The page's lookups and the order's check share one cache: one request to Binance.
    await exchange.wait_exchange_info_requests(1)
    assert len(exchange.exchange_info_requests) == 1


async def test_symbol_info_with_exchange_filters_off(start_app) -> None:  # type: ignore[no-untyped-def]
    client = await start_app(exchange_filters="off")
    body = await (await client.get("/symbols/LTCBTC")).json()
    assert body["source"] == "off" and body["tick_size"] is None
    assert body["base_asset"] == "LTC" and body["quote_asset"] == "BTC"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("wss://stream.binance.com:9443", "live"),
        ("wss://data-stream.binance.vision", "live"),
        ("ws://127.0.0.1:5555", "demo"),
        ("wss://binance.com.example.org", "demo"),
    ],
)
def test_the_page_says_demo_or_live(url: str, kind: str) -> None:
    assert market_kind(url) == kind


async def test_the_page_carries_the_market_kind(client: TestClient) -> None:  # type: ignore[type-arg]
    page = await (await client.get("/")).text()
    assert 'data-market="demo"' in page and "{{" not in page


async def test_in_depth_mode_the_book_frame_carries_the_visible_levels(
    start_app,  # type: ignore[no-untyped-def]
    emulator: BinanceEmulator,
) -> None:
    client = await start_app(market_stream="depth5")
    async with client.ws_connect("/ws?book=BTCUSDT") as ws:
        await emulator.wait_subscribed("btcusdt@depth5@100ms")
        bids = [(f"{100 - n}", f"{n + 1}") for n in range(5)]
        asks = [(f"{101 + n}.50", "2") for n in range(5)]
        emulator.depth("BTCUSDT", bids, asks)
        while (message := await ws.receive_json())["type"] != "book":
            pass
    assert message["bid"] == "100" and message["ask"] == "101.5"
    assert message["bids"] == [[p, q] for p, q in bids]
    assert message["asks"] == [[p.rstrip("0").rstrip("."), q] for p, q in asks]


async def test_a_book_ticker_frame_has_no_levels(
    client: TestClient,  # type: ignore[type-arg]
    emulator: BinanceEmulator,
) -> None:
    async with client.ws_connect("/ws?book=BTCUSDT") as ws:
        await emulator.wait_subscribed("btcusdt@bookTicker")
        emulator.book_ticker("BTCUSDT", "100", "1", "101", "1")
        while (message := await ws.receive_json())["type"] != "book":
            pass
    assert "bids" not in message and "asks" not in message
