"""The exchangeInfo client (app/adapters/binance/exchange_info.py) against the emulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from app.adapters.binance.exchange_info import ExchangeFilters, ExchangeInfoClient, FiltersOff
from app.core.filters import FilterFailure
from app.emulator.exchange_info import split_symbol, symbol_entry
from app.emulator.server import BinanceEmulator

D = Decimal


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(emulator: BinanceEmulator, clock: FakeClock) -> AsyncIterator[ExchangeInfoClient]:
    info = ExchangeInfoClient(
        emulator.rest_url,
        timeout_s=1.0,
        ttl_s=3600,
        unknown_ttl_s=60,
        retry_after_s=5,
        clock=clock,
    )
    yield info
    await info.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the emulator's endpoint --------------------------------------------------------------------


async def test_emulator_answers_as_binance_does(emulator: BinanceEmulator) -> None:
    url = emulator.rest_url + "/api/v3/exchangeInfo"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"symbol": "BTCUSDT"}) as response:
            assert response.status == 200
            body = await response.json()
        assert [s["symbol"] for s in body["symbols"]] == ["BTCUSDT"]
        assert {"timezone", "serverTime", "rateLimits", "exchangeFilters"} <= set(body)
        async with http.get(url) as response:
            every = {s["symbol"] for s in (await response.json())["symbols"]}
        assert every == {"BTCUSDT", "ETHUSDT", "BNBUSDT", "LTCBTC"}
        async with http.get(url, params={"symbols": '["LTCBTC","ETHUSDT"]'}) as response:
            assert [s["symbol"] for s in (await response.json())["symbols"]] == [
                "LTCBTC",
                "ETHUSDT",
            ]
        async with http.get(url, params={"symbol": "NOPEUSDT"}) as response:
            assert response.status == 400
            assert await response.json() == {"code": -1121, "msg": "Invalid symbol."}
        async with http.get(url, params={"symbol": "btcusdt"}) as response:
            assert response.status == 400
            assert (await response.json())["code"] == -1100
        emulator.register_symbol(symbol_entry("NEWUSDT", "NEW", "USDT"))
        async with http.get(url, params={"symbol": "NEWUSDT"}) as response:
            assert response.status == 200
        emulator.unlist_symbol("NEWUSDT")
        async with http.get(url, params={"symbol": "NEWUSDT"}) as response:
            assert response.status == 400
    assert emulator.exchange_info_requests[0] == "symbol=BTCUSDT"


async def test_emulator_can_list_every_symbol_for_made_up_ones(
    emulator: BinanceEmulator, client: ExchangeInfoClient
) -> None:
    assert (await client.lookup("AAAUSDT")).outcome == "unknown"
    emulator.list_every_symbol = True
    client.forget()
    lookup = await client.lookup("AAAUSDT")
    assert lookup.outcome == "ok" and lookup.info is not None
    assert (lookup.info.base_asset, lookup.info.quote_asset) == ("AAA", "USDT")
    assert await client.check_limit("AAAUSDT", D("0.00000001"), D("0.00000001")) is None
    assert await client.check_market("AAAUSDT", D("12345.6789"), D("987654.321")) is None
    failure = await client.check_limit("AAAUSDT", D("0.000000001"), D(1))
    assert failure is not None and failure.filter == "PRICE_FILTER"
    btc = await client.lookup("BTCUSDT")  # a listed symbol keeps its own filters
    assert btc.info is not None and btc.info.lot_size is not None
    assert btc.info.lot_size.step_size == D("0.00001")


def test_split_symbol() -> None:
    assert split_symbol("LTCBTC") == ("LTC", "BTC")
    assert split_symbol("PEPEFDUSD") == ("PEPE", "FDUSD")
    assert split_symbol("USDTTRY") == ("USDT", "TRY")
    assert split_symbol("ABCD") == ("A", "BCD")  # no known quote: the last three


# -- lookups ------------------------------------------------------------------------------------


async def test_a_trading_symbol_is_read_and_checked(client: ExchangeInfoClient) -> None:
    checker: ExchangeFilters = client
    assert await checker.check_limit("BTCUSDT", D("64000.01"), D("0.001")) is None
    failure = await checker.check_limit("BTCUSDT", D("64000.001"), D("0.001"))
    assert failure is not None and failure.filter == "PRICE_FILTER"
    failure = await checker.check_market("btcusdt", D("0.00001"), D("64000"))
    assert failure is not None and failure.filter == "NOTIONAL"
    assert await checker.check_market("BTCUSDT", D("0.001"), D("64000")) is None
    lookup = await client.lookup("BTCUSDT")
    assert lookup.outcome == "ok" and lookup.info is not None
    assert (lookup.info.base_asset, lookup.info.quote_asset) == ("BTC", "USDT")
    assert client.requests == 1  # every check above used the one answer
    assert checker.state() == {"exchange_info": "ok", "unchecked_orders": 0}


async def test_an_unknown_symbol_is_refused_and_remembered_a_while(
    client: ExchangeInfoClient, emulator: BinanceEmulator, clock: FakeClock
) -> None:
    failure = await client.check_limit("NOPEUSDT", D(1), D(1))
    assert failure == FilterFailure(
        "unknown_symbol", "status", "symbol", "NOPEUSDT is not a symbol Binance lists"
    )
    assert (await client.lookup("NOPEUSDT")).outcome == "unknown"
    emulator.register_symbol(symbol_entry("NOPEUSDT", "NOPE", "USDT"))
    clock.now += 59
    assert (await client.lookup("NOPEUSDT")).outcome == "unknown"
    assert client.requests == 1
    clock.now += 2  # past unknown_ttl_s: asked again, and now listed
    assert (await client.lookup("NOPEUSDT")).outcome == "ok"
    assert await client.check_limit("NOPEUSDT", D(100), D(1)) is None
    assert client.requests == 2
    assert client.state() == {"exchange_info": "ok", "unchecked_orders": 0}


async def test_a_symbol_not_trading_is_refused_and_asked_again_sooner(
    client: ExchangeInfoClient, emulator: BinanceEmulator, clock: FakeClock
) -> None:
    emulator.register_symbol(symbol_entry("HALTUSDT", "HALT", "USDT", status="BREAK"))
    failure = await client.check_limit("HALTUSDT", D(100), D(1))
    assert failure is not None and failure.code == "unknown_symbol"
    assert failure.message == "HALTUSDT is not trading on Binance now (status BREAK)"
    failure = await client.check_market("HALTUSDT", D(1), None)
    assert failure is not None and failure.code == "unknown_symbol"
    emulator.register_symbol(symbol_entry("HALTUSDT", "HALT", "USDT"))
    clock.now += 61
    assert await client.check_limit("HALTUSDT", D(100), D(1)) is None
    assert client.requests == 2


async def test_a_trading_symbol_is_cached_for_the_ttl(
    client: ExchangeInfoClient, emulator: BinanceEmulator, clock: FakeClock
) -> None:
    await client.lookup("BTCUSDT")
    emulator.register_symbol(symbol_entry("BTCUSDT", "BTC", "USDT", tick_size="1.00000000"))
    clock.now += 3599
    assert await client.check_limit("BTCUSDT", D("64000.01"), D("0.001")) is None  # cached
    assert len(emulator.exchange_info_requests) == 1
    clock.now += 2
    failure = await client.check_limit("BTCUSDT", D("64000.01"), D("0.001"))
    assert failure is not None and failure.filter == "PRICE_FILTER"  # the new tick, read again
    assert len(emulator.exchange_info_requests) == 2
    client.forget("btcusdt")
    await client.lookup("BTCUSDT")
    assert len(emulator.exchange_info_requests) == 3


async def test_concurrent_lookups_of_a_symbol_share_one_request(
    client: ExchangeInfoClient, emulator: BinanceEmulator
) -> None:
    emulator.hold_exchange_info()
    lookups = [asyncio.create_task(client.lookup("ETHUSDT")) for _ in range(20)]
    other = asyncio.create_task(client.lookup("BNBUSDT"))
    await emulator.wait_exchange_info_requests(2)
    lookups[0].cancel()  # one caller giving up leaves the others their answer
    emulator.hold_exchange_info(False)
    results = await asyncio.gather(*lookups[1:], other)
    assert {r.outcome for r in results} == {"ok"}
    assert len({id(r) for r in results[:-1]}) == 1
    assert sorted(emulator.exchange_info_requests) == ["symbol=BNBUSDT", "symbol=ETHUSDT"]
    assert client.requests == 2
    assert lookups[0].cancelled()


# -- Binance out of reach -----------------------------------------------------------------------


async def _assert_unchecked(client: ExchangeInfoClient, reason: str) -> None:
    with capture_logs() as logs:
        assert await client.check_limit("BTCUSDT", D("0.001"), D("0.0000001")) is None
        assert await client.check_market("ETHUSDT", D("0.0000001"), D(1)) is None
    assert client.state() == {"exchange_info": "unavailable", "unchecked_orders": 2}
    warnings = [line for line in logs if line["log_level"] == "warning"]
    assert len(warnings) == 1  # said once, not once per order
    assert reason in warnings[0]["reason"]


async def test_unreachable_accepts_unchecked_and_says_so(clock: FakeClock) -> None:
    client = ExchangeInfoClient(f"http://127.0.0.1:{_closed_port()}", timeout_s=1, clock=clock)
    try:
        await _assert_unchecked(client, "ClientConnectorError")
        assert (await client.lookup("BTCUSDT")).outcome == "unavailable"
        assert client.requests == 2  # one per symbol, then remembered for retry_after_s
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("error", "HTTP 500"), ("reset", "ServerDisconnected"), ("stall", "TimeoutError")],
)
async def test_a_failing_endpoint_accepts_unchecked_then_recovers(
    emulator: BinanceEmulator, clock: FakeClock, fault: Any, reason: str
) -> None:
    client = ExchangeInfoClient(emulator.rest_url, timeout_s=0.3, retry_after_s=5, clock=clock)
    try:
        emulator.exchange_info_fault(fault)
        await _assert_unchecked(client, reason)
        emulator.exchange_info_fault(None)
        clock.now += 4
        assert (await client.lookup("BTCUSDT")).outcome == "unavailable"  # not asked yet
        assert client.requests == 2
        clock.now += 2
        with capture_logs() as logs:
            failure = await client.check_limit("BTCUSDT", D("0.001"), D("0.0000001"))
        assert failure is not None and failure.filter == "PRICE_FILTER"
        assert client.state() == {"exchange_info": "ok", "unchecked_orders": 2}
        assert not [line for line in logs if line["log_level"] == "warning"]
    finally:
        await client.close()


async def test_rate_limited_waits_as_long_as_binance_asks(
    emulator: BinanceEmulator, clock: FakeClock
) -> None:
    client = ExchangeInfoClient(emulator.rest_url, retry_after_s=5, clock=clock)
    try:
        emulator.exchange_info_fault("rate_limited")
        assert (await client.lookup("BTCUSDT")).outcome == "unavailable"
        emulator.exchange_info_fault(None)
        clock.now += 29  # Retry-After: 30
        assert (await client.lookup("BTCUSDT")).outcome == "unavailable"
        clock.now += 2
        assert (await client.lookup("BTCUSDT")).outcome == "ok"
        assert len(emulator.exchange_info_requests) == 2
    finally:
        await client.close()


async def test_what_was_read_before_is_used_while_binance_is_out_of_reach(
    client: ExchangeInfoClient, emulator: BinanceEmulator, clock: FakeClock
) -> None:
    await client.lookup("BTCUSDT")
    await client.lookup("NOPEUSDT")
    emulator.exchange_info_fault("error")
    clock.now += 3601
    failure = await client.check_limit("BTCUSDT", D("64000.001"), D("0.001"))
    assert failure is not None and failure.filter == "PRICE_FILTER"  # still checked
    failure = await client.check_limit("NOPEUSDT", D(1), D(1))
    assert failure is not None and failure.code == "unknown_symbol"
    assert client.state() == {"exchange_info": "unavailable", "unchecked_orders": 0}
    assert len(emulator.exchange_info_requests) == 4  # both were asked again
    clock.now += 1
    await client.lookup("BTCUSDT")
    assert len(emulator.exchange_info_requests) == 4  # and not again before retry_after_s


async def test_a_malformed_answer_is_unavailable_not_a_crash(
    client: ExchangeInfoClient, emulator: BinanceEmulator
) -> None:
    entry = symbol_entry("BADUSDT", "BAD", "USDT")
    entry["filters"][1]["stepSize"] = "0,001"
    emulator.register_symbol(entry)
    lookup = await client.lookup("BADUSDT")
    assert lookup.outcome == "unavailable"
    assert "LOT_SIZE: stepSize" in lookup.reason
    assert await client.check_limit("BADUSDT", D(1), D(1)) is None
    assert client.state()["exchange_info"] == "unavailable"


# -- sessions and the off switch ----------------------------------------------------------------


async def test_a_session_passed_in_is_used_and_left_open(emulator: BinanceEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        client = ExchangeInfoClient(emulator.rest_url, session=session)
        assert (await client.lookup("LTCBTC")).outcome == "ok"
        await client.close()
        assert not session.closed


async def test_filters_off_passes_everything() -> None:
    off: ExchangeFilters = FiltersOff()
    assert await off.check_limit("NOPE", D("0.0000001"), D(1)) is None
    assert await off.check_market("NOPE", D(1), None) is None
    assert off.state() == {"exchange_info": "off", "unchecked_orders": 0}
    await off.close()


async def test_close_ends_a_request_under_way(emulator: BinanceEmulator) -> None:
    client = ExchangeInfoClient(emulator.rest_url, timeout_s=30)
    emulator.exchange_info_fault("stall")
    lookup = asyncio.create_task(client.lookup("BTCUSDT"))
    await emulator.wait_exchange_info_requests(1)
    await client.close()
    with pytest.raises(asyncio.CancelledError):
        await lookup
