"""Binance's symbol filters at intake (CONTRACT.md, "Paper account"), end to end against the
emulator's exchange info: what is refused (422 naming the filter and the field, nothing
stored), what happens when exchange info cannot be read, and EXCHANGE_FILTERS=off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from app.adapters.binance.exchange_info import ExchangeInfoClient
from app.emulator.exchange_info import default_exchange_symbols, symbol_entry
from app.emulator.server import BinanceEmulator
from app.keys import FILTERS, STORE
from app.settings import Settings
from tests.conftest import EventLog
from tests.service_process import ServiceProcess, free_port

StartApp = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


@pytest.fixture
def binance_listing(exchange: BinanceEmulator) -> BinanceEmulator:
    """The emulator's exchange info as Binance answers it: BTCUSDT (tick 0.01, step 0.00001,
    notional 5 to 9,000,000), ETHUSDT, BNBUSDT and LTCBTC with their filters, any other
    symbol unknown (-1121)."""
    exchange.exchange_symbols = default_exchange_symbols()
    exchange.list_every_symbol = False
    return exchange


async def _post(client: TestClient, **fields: Any) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    response = await client.post("/order/limit", json={"side": "buy", **fields})
    return response.status, await response.json()


async def _stored(client: TestClient) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    response = await client.get("/orders")
    assert response.status == 200
    orders: list[dict[str, Any]] = (await response.json())["orders"]
    return orders


async def _ready(client: TestClient) -> dict[str, Any]:  # type: ignore[type-arg]
    response = await client.get("/readyz")
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body  # exchange info never changes readiness
    return body


# -- what is refused ----------------------------------------------------------------------------

REFUSALS = [
    # (symbol, order_size, price, filter, field, words the message must hold)
    ("BTCUSDT", "0.001", "64000.001", "PRICE_FILTER", "price", "a multiple of 0.01"),
    ("BTCUSDT", "0.001", "0.001", "PRICE_FILTER", "price", "between 0.01 and 1000000"),
    ("BTCUSDT", "0.00001", "1000000.01", "PRICE_FILTER", "price", "between 0.01 and 1000000"),
    ("BTCUSDT", "0.000015", "64000", "LOT_SIZE", "order_size", "a multiple of 0.00001"),
    ("BTCUSDT", "0.000001", "64000", "LOT_SIZE", "order_size", "between 0.00001 and 9000"),
    ("BTCUSDT", "9000.00001", "1", "LOT_SIZE", "order_size", "between 0.00001 and 9000"),
    ("BTCUSDT", "0.0001", "40000", "NOTIONAL", "order_size", "between 5 and 9000000"),
    ("BTCUSDT", "100", "100000", "NOTIONAL", "order_size", "(it is 10000000)"),
    ("LTCBTC", "0.1", "0.0012345", "PRICE_FILTER", "price", "a multiple of 0.000001"),
    ("LTCBTC", "0.0005", "0.001", "LOT_SIZE", "order_size", "a multiple of 0.001"),
    ("LTCBTC", "0.05", "0.001", "NOTIONAL", "order_size", "between 0.0001 and 9000000"),
]


@pytest.mark.parametrize(("symbol", "size", "price", "name", "field", "words"), REFUSALS)
async def test_an_order_a_filter_refuses_is_422_naming_filter_and_field_and_nothing_is_stored(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
    events: EventLog,
    symbol: str,
    size: str,
    price: str,
    name: str,
    field: str,
    words: str,
) -> None:
    status, body = await _post(client, symbol=symbol, order_size=size, price=price)
    assert status == 422, body
    error = body["error"]
    assert error["code"] == "filter_failure"
    assert error["message"].startswith(f"{name}: ") and words in error["message"]
    assert error["details"] == [{"field": field, "message": error["message"]}]
    assert await _stored(client) == []
    assert events.events == []  # no `accepted` event either
    assert await client.app[STORE].open_counts() == {}


async def test_orders_within_the_filters_are_accepted(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
) -> None:
    accepted = [
        ("BTCUSDT", "0.00012", "50000.01"),  # notional 6.0000012: just over 5
        ("BTCUSDT", "0.00001", "500000"),
        ("LTCBTC", "0.1", "0.001234"),  # notional 0.0001234 >= 0.0001
        ("ethusdt", "0.0025", "2000.5"),  # any case: checked as ETHUSDT
    ]
    for symbol, size, price in accepted:
        status, body = await _post(client, symbol=symbol, order_size=size, price=price)
        assert status == 202, body
    assert len(await _stored(client)) == len(accepted)
    # One request per symbol: every later order of a symbol is checked from the cache.
    assert sorted(binance_listing.exchange_info_requests) == [
        "symbol=BTCUSDT", "symbol=ETHUSDT", "symbol=LTCBTC",
    ]  # fmt: skip
    assert (await _ready(client))["exchange_info"] == "ok"


async def test_the_older_min_notional_filter_is_enforced_too(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
) -> None:
    entry = symbol_entry("OLDUSDT", "OLD", "USDT", step_size="0.01000000")
    entry["filters"] = [f for f in entry["filters"] if f["filterType"] != "NOTIONAL"] + [
        {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000", "applyToMarket": True,
         "avgPriceMins": 5},
    ]  # fmt: skip
    binance_listing.register_symbol(entry)
    status, body = await _post(client, symbol="OLDUSDT", order_size="0.99", price="10")
    assert status == 422
    assert body["error"]["code"] == "filter_failure"
    assert body["error"]["message"].startswith("MIN_NOTIONAL: ")
    assert body["error"]["details"][0]["field"] == "order_size"
    status, body = await _post(client, symbol="OLDUSDT", order_size="1", price="10")
    assert status == 202, body


async def test_a_symbol_binance_does_not_list_is_422_unknown_symbol(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
) -> None:
    status, body = await _post(client, symbol="nopeusdt", order_size="1", price="1")
    assert status == 422
    assert body["error"] == {
        "code": "unknown_symbol",
        "message": "NOPEUSDT is not a symbol Binance lists",
        "details": [{"field": "symbol", "message": "NOPEUSDT is not a symbol Binance lists"}],
    }
    assert await _stored(client) == []


async def test_a_symbol_not_trading_is_422_unknown_symbol(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
) -> None:
    binance_listing.register_symbol(symbol_entry("HALTUSDT", "HALT", "USDT", status="BREAK"))
    status, body = await _post(client, symbol="HALTUSDT", order_size="1", price="100")
    assert status == 422
    assert body["error"]["code"] == "unknown_symbol"
    assert "status BREAK" in body["error"]["message"]
    assert body["error"]["details"][0]["field"] == "symbol"
    assert await _stored(client) == []


async def test_a_refused_order_takes_no_place_under_the_open_order_cap(
    start_app: StartApp, binance_listing: BinanceEmulator
) -> None:
    client = await start_app(max_open_orders=1)
    for _ in range(3):
        status, _ = await _post(client, symbol="BTCUSDT", order_size="0.0001", price="1")
        assert status == 422
    status, body = await _post(client, symbol="BTCUSDT", order_size="0.001", price="60000")
    assert status == 202, body


async def test_a_repeated_client_order_id_returns_the_order_before_any_filter_check(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
) -> None:
    order = {"symbol": "BTCUSDT", "order_size": "0.001", "price": "60000",
             "client_order_id": "first"}  # fmt: skip
    status, placed = await _post(client, **order)
    assert status == 202
    # Binance halts the symbol; the app reads exchange info again.
    binance_listing.register_symbol(symbol_entry("BTCUSDT", "BTC", "USDT", status="HALT"))
    filters = client.app[FILTERS]
    assert isinstance(filters, ExchangeInfoClient)
    filters.forget()
    status, again = await _post(client, **order)
    assert status == 200 and again["order_id"] == placed["order_id"]
    status, body = await _post(client, **{**order, "client_order_id": "second"})
    assert status == 422 and body["error"]["code"] == "unknown_symbol"


# -- exchange info out of reach -----------------------------------------------------------------


async def test_unreachable_exchange_info_accepts_unchecked_logs_once_and_readyz_says_so(
    start_app: StartApp,
) -> None:
    client = await start_app(binance_rest_url=f"http://127.0.0.1:{free_port()}")  # nobody there
    assert (await _ready(client))["exchange_info"] == "ok"  # nothing asked yet
    with capture_logs() as logs:
        for symbol in ("BTCUSDT", "NOPEUSDT", "LTCBTC"):
            # Orders Binance would refuse: unchecked, they are taken.
            status, body = await _post(client, symbol=symbol, order_size="0.0000001", price="1")
            assert status == 202, body
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == [
        "exchange info unavailable; orders are accepted unchecked"
    ]
    ready = await _ready(client)
    assert (ready["exchange_info"], ready["unchecked_orders"]) == ("unavailable", 3)
    assert ready["ready"] is True
    metrics = await (await client.get("/metrics")).text()
    assert "executor_orders_unchecked_total 3.0" in metrics
    assert "executor_exchange_info_available 0.0" in metrics
    assert len(await _stored(client)) == 3


async def test_a_failing_exchange_info_endpoint_accepts_unchecked_then_checks_again(
    client: TestClient,  # type: ignore[type-arg]
    binance_listing: BinanceEmulator,
) -> None:
    binance_listing.exchange_info_fault("error")  # HTTP 500
    status, _ = await _post(client, symbol="BTCUSDT", order_size="0.0000001", price="1")
    assert status == 202
    ready = await _ready(client)
    assert (ready["exchange_info"], ready["unchecked_orders"]) == ("unavailable", 1)
    binance_listing.exchange_info_fault(None)
    filters = client.app[FILTERS]
    assert isinstance(filters, ExchangeInfoClient)
    filters.forget()  # past the retry interval
    status, body = await _post(client, symbol="BTCUSDT", order_size="0.0000001", price="1")
    assert status == 422 and body["error"]["code"] == "filter_failure"
    ready = await _ready(client)
    assert (ready["exchange_info"], ready["unchecked_orders"]) == ("ok", 1)


# -- EXCHANGE_FILTERS=off -----------------------------------------------------------------------


async def test_exchange_filters_off_checks_nothing_and_asks_nothing(
    start_app: StartApp, binance_listing: BinanceEmulator
) -> None:
    client = await start_app(exchange_filters="off")
    for symbol, size, price in (("NOPEUSDT", "1", "1"), ("BTCUSDT", "0.0000001", "0.001")):
        status, body = await _post(client, symbol=symbol, order_size=size, price=price)
        assert status == 202, body
    assert binance_listing.exchange_info_requests == []
    ready = await _ready(client)
    assert (ready["exchange_info"], ready["unchecked_orders"]) == ("off", 0)


# -- the service as deployed: `python -m app` ---------------------------------------------------


@pytest.mark.slow
async def test_the_service_process_checks_orders_against_binance_rest_url(
    tmp_path: Path, binance_listing: BinanceEmulator
) -> None:
    service = ServiceProcess(
        tmp_path / "filters.db", binance_listing.base_url, EXCHANGE_FILTERS="on"
    )
    await service.start()
    try:
        status, body = await service.request(
            "POST", "/order/limit",
            json={"symbol": "BTCUSDT", "side": "buy", "order_size": "0.001", "price": "1.005"},
        )  # fmt: skip
        assert status == 422 and body["error"]["message"].startswith("PRICE_FILTER: ")
        status, body = await service.request(
            "POST", "/order/limit",
            json={"symbol": "BTCUSDT", "side": "buy", "order_size": "0.001", "price": "60000"},
        )  # fmt: skip
        assert status == 202, body
        assert binance_listing.exchange_info_requests == ["symbol=BTCUSDT"]
        _, ready = await service.request("GET", "/readyz")
        assert ready["exchange_info"] == "ok"
    finally:
        assert await service.terminate() == 0


# -- settings -----------------------------------------------------------------------------------


def test_settings_default_to_binance_with_the_filters_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BINANCE_REST_URL", "EXCHANGE_FILTERS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.binance_rest_url, settings.exchange_filters) == (
        "https://api.binance.com", "on",
    )  # fmt: skip


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_REST_URL", "http://127.0.0.1:8090/")
    monkeypatch.setenv("EXCHANGE_FILTERS", "OFF")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.binance_rest_url, settings.exchange_filters) == (
        "http://127.0.0.1:8090", "off",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BINANCE_REST_URL", "api.binance.com"),
        ("BINANCE_REST_URL", "wss://api.binance.com"),
        ("BINANCE_REST_URL", "https://"),
        ("BINANCE_REST_URL", "https://api.binance.com:99999"),
        ("BINANCE_REST_URL", "https://api.binance.com/?x=1"),
        ("EXCHANGE_FILTERS", "maybe"),
        ("EXCHANGE_FILTERS", ""),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_it(
    name: str, value: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={"PATH": "/usr/bin:/bin", name: value, "DATABASE_PATH": str(tmp_path / "x.db")},
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"invalid configuration: {name}=")
    assert not (tmp_path / "x.db").exists()
