"""The terminal commands (`python -m app orders | book | account`, rounding, --help, errors)
against the real app and the Binance emulator."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from app.__main__ import main
from app.core.domain import StreamKind
from app.emulator.exchange_info import default_exchange_symbols
from app.emulator.server import BinanceEmulator
from app.terminal.api import Api, ApiError, error_line
from app.terminal.book import BookView, follow_book
from app.terminal.cli import COMMANDS
from app.terminal.orders import id_tail_length, list_orders, orders_table, resolve_order_id
from app.terminal.precision import (
    Precision,
    Precisions,
    approximate,
    precision_from,
    to_increment,
)
from app.watch import watch
from tests.conftest import EventLog
from tests.helpers import partly_filled_sell, place, stream
from tests.test_watch import Output

Client = TestClient  # type: ignore[type-arg]


def _base(client: Client) -> str:
    return f"http://{client.host}:{client.port}"


@pytest.fixture
async def api(client: Client) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, _base(client), None)


async def _cli(*arguments: str) -> tuple[int, str]:
    """`python -m app ...` in a child process: its exit code and its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *arguments, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def _filled_at_two_prices(client: Client, emulator: BinanceEmulator, events: EventLog) -> Any:
    """A LTCBTC sell of 3 filled 2 @ 10 then 1 @ 10.5: its average 30.5/3 does not terminate."""
    order = await partly_filled_sell(client, emulator, events, size="3", first_fill="2")
    emulator.book_ticker("LTCBTC", "10.5", "1", "11", "1")
    await events.wait_for(order["order_id"], "filled")
    return await (await client.get(f"/orders/{order['order_id']}")).json()


# -- rounding ---------------------------------------------------------------------------


def test_prices_round_to_the_tick_and_quantities_to_the_step() -> None:
    precision = Precision(tick=Decimal("0.01000000"), step=Decimal("0.00001000"))
    average = "61845.02525696930788414528754"
    assert precision.price(average) == "61845.03"
    assert precision.price("61845.025") == "61845.02"  # half-even, like Decimal
    assert precision.qty("0.5") == "0.50000"
    assert to_increment(Decimal("10.3"), Decimal("0.5")) == "10.5"  # a tick that is not 10^-n


def test_without_filters_numbers_keep_8_significant_digits_and_the_orders_own_decimals() -> None:
    assert approximate(Decimal("61845.02525696930788414528754"), ["61845.02"]) == "61845.025"
    assert approximate(Decimal("10.16666666666666666666666667"), ["10"]) == "10.166667"
    assert approximate(Decimal("10"), ["10.50"]) == "10.00"  # as many decimals as the price
    assert approximate(Decimal("0.00002345678912345")) == "0.000023456789"
    assert Precision().qty("2", ["5"]) == "2"


def test_the_tick_and_step_are_read_from_the_usual_shapes() -> None:
    expected = Precision(Decimal("0.01"), Decimal("0.001"))
    assert precision_from({"symbol": "X", "tick_size": "0.01", "step_size": "0.001"}) == expected
    assert (
        precision_from({"price_filter": {"tickSize": "0.01"}, "lot_size": {"stepSize": "0.001"}})
        == expected
    )
    binance = {"filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "stepSize": "0.00100000"},
    ]}  # fmt: skip
    assert precision_from(binance) == expected
    assert precision_from({"tick_size": "0"}) == Precision()  # not an increment: approximate
    assert precision_from("not found") == Precision()


async def test_watch_shows_a_long_average_price_rounded(
    client: Client, emulator: BinanceEmulator, events: EventLog
) -> None:
    order = await _filled_at_two_prices(client, emulator, events)
    assert len(order["avg_price"]) > 20  # the API stays exact
    out = io.StringIO()
    assert await watch(_base(client), order["order_id"], token=None, out=out) == 0
    text = out.getvalue()
    assert order["avg_price"] not in text
    assert "3/3 avg 10.166667" in text
    assert "fill #2   1 @ 10.5" in text and ", fee " in text  # each fill's fee


async def test_the_tick_and_step_come_from_the_services_symbol_endpoint(
    start_app: Callable[..., Awaitable[Client]], exchange: BinanceEmulator
) -> None:
    """GET /symbols/{symbol} answers from exchange info (here the emulator's LTCBTC entry,
    tick 0.000001 and step 0.001): the views show prices and sizes with those decimals."""
    exchange.register_symbol(default_exchange_symbols()["LTCBTC"])
    client = await start_app()
    events = EventLog(client.app)
    try:
        order = await _filled_at_two_prices(client, exchange, events)
    finally:
        await events.close()
    async with aiohttp.ClientSession() as session:
        api = Api(session, _base(client), None)
        assert await Precisions(api).of("ltcbtc") == Precision(
            Decimal("0.000001"), Decimal("0.001")
        )
        assert await Precisions(api).of("X") == Precision()  # refused (422): approximate
        table = io.StringIO()
        assert await list_orders(api, table) == 0
    row = table.getvalue().splitlines()[1].split()
    assert row[5:9] == ["3.000", "10.000000", "100.00%", "10.166667"]
    out = io.StringIO()
    assert await watch(_base(client), order["order_id"], token=None, out=out) == 0
    assert "fill #2   1.000 @ 10.500000" in out.getvalue()
    assert "3.000/3.000 avg 10.166667" in out.getvalue()


# -- orders -----------------------------------------------------------------------------


def test_the_id_tail_is_the_shortest_that_tells_the_orders_apart() -> None:
    first = "0661a5c6cb9546b8a918d4006332d766"
    differs_10_from_the_end = first[:-10] + "f" + first[-9:]
    assert id_tail_length([first, differs_10_from_the_end]) == 10
    assert id_tail_length([first, first[:-1] + "7"]) == 6  # never shorter than 6
    assert id_tail_length([first]) == 6


async def test_orders_lists_a_table_newest_first_with_filters(
    client: Client, emulator: BinanceEmulator, events: EventLog, api: Api
) -> None:
    filled = await _filled_at_two_prices(client, emulator, events)
    resting = await place(client, symbol="ETHBTC", side="buy", order_size="1.5", price="0.01")
    out = io.StringIO()
    assert await list_orders(api, out) == 0
    header, *rows = out.getvalue().splitlines()
    assert header.split() == [
        "ID", "SYMBOL", "SIDE", "TYPE", "SIZE", "PRICE", "FILLED", "AVG", "FEES",
        "STATUS", "EXPIRES", "IN", "REASON",
    ]  # fmt: skip
    assert len(rows) == 2
    newest, oldest = (row.split() for row in rows)
    assert resting["order_id"].endswith(newest[0]) and filled["order_id"].endswith(oldest[0])
    assert len(newest[0]) >= 6 and newest[0] != oldest[0]
    assert newest[1:8] == ["ETHBTC", "buy", "limit", "GTT", "1.5", "0.01", "0.00%"]
    assert newest[8:10] == ["-", "-"] and newest[10] == "open"
    assert newest[11].endswith("s")  # expires in ...s/...m
    assert oldest[1:9] == ["LTCBTC", "sell", "limit", "GTT", "3", "10", "100.00%", "10.166667"]
    assert oldest[-2:] == ["filled", "-"]

    only = io.StringIO()
    assert await list_orders(api, only, status="filled", symbol="ltcbtc") == 0
    assert len(only.getvalue().splitlines()) == 2 and "LTCBTC" in only.getvalue()
    none = io.StringIO()
    assert await list_orders(api, none, symbol="BNBUSDT") == 0
    assert none.getvalue() == "no orders\n"


def test_the_table_rounds_with_the_symbols_tick_when_known() -> None:
    order = {
        "order_id": "0661a5c6cb9546b8a918d4006332d766", "symbol": "BTCUSDT", "side": "buy",
        "type": "market", "time_in_force": "IOC", "order_size": "0.5", "price": None,
        "status": "filled", "filled_qty": "0.5", "avg_price": "61845.02525696930788414528754",
        "expires_at": "2026-01-01T00:00:00Z", "reason": None, "fees": "0.0005",
        "fee_asset": "BTC",
    }  # fmt: skip
    precision = {"BTCUSDT": Precision(Decimal("0.01"), Decimal("0.00001"))}
    row = orders_table([order], precision, now=0).splitlines()[1].split()
    assert row == ["32d766", "BTCUSDT", "buy", "market", "0.50000", "market", "100.00%",
                   "61845.03", "0.0005", "BTC", "filled", "-"]  # fmt: skip


async def test_orders_pages_with_the_cursor_or_all(client: Client, api: Api) -> None:
    placed = [await place(client, order_size="1", price=str(10 + i)) for i in range(5)]
    newest_first = [order["order_id"] for order in reversed(placed)]

    def tails(text: str) -> list[str]:
        return [line.split()[0] for line in text.splitlines()[1:] if not line.startswith("more")]

    def shown(text: str) -> list[str]:
        return [next(i for i in newest_first if i.endswith(t)) for t in tails(text)]

    first = io.StringIO()
    assert await list_orders(api, first, limit=2) == 0
    assert shown(first.getvalue()) == newest_first[:2]
    more = first.getvalue().splitlines()[-1]
    assert more.startswith("more: --cursor ")
    second = io.StringIO()
    assert await list_orders(api, second, limit=2, cursor=more.split()[2]) == 0
    assert shown(second.getvalue()) == newest_first[2:4]
    everything = io.StringIO()
    assert await list_orders(api, everything, limit=2, follow_all=True) == 0
    assert shown(everything.getvalue()) == newest_first
    assert "more:" not in everything.getvalue()

    code, output = await _cli("orders", "--limit", "2", "--url", _base(client), "--full-ids")
    assert code == 0 and output.splitlines()[1].split()[0] == newest_first[0]


async def test_watch_takes_the_tail_the_table_shows(client: Client, api: Api) -> None:
    placed = [await place(client, symbol="QUIETUSDT", order_size="1", price="10", timeout_s=0.3)
              for _ in range(2)]  # fmt: skip
    table = io.StringIO()
    assert await list_orders(api, table) == 0
    tail = table.getvalue().splitlines()[1].split()[0]
    assert placed[1]["order_id"].endswith(tail) and len(tail) < 32
    out = io.StringIO()
    assert await watch(_base(client), tail, token=None, out=out) == 1  # it expires
    assert f"order {placed[1]['order_id']}: " in out.getvalue()
    missing = io.StringIO()
    assert await watch(_base(client), "f" * 31, token=None, out=missing) == 2
    assert (
        missing.getvalue()
        == "error: order not found: none of the last 500 ends with " + "f" * 31 + "\n"
    )


class ListedOrders:
    """An Api stand-in whose GET /orders lists the given ids."""

    def __init__(self, *order_ids: str) -> None:
        self.order_ids = order_ids

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        assert path == "/orders" and params == {"limit": "500"}
        return {"orders": [{"order_id": i} for i in self.order_ids], "next_cursor": None}


async def test_an_id_tail_must_name_one_recent_order() -> None:
    first, second = "0661a5c6cb9546b8a918d4006332d766", "0661a5c6cb9546b8a918d4016332d766"
    listed: Any = ListedOrders(first, second)
    assert await resolve_order_id(listed, "06332D766") == first  # any case
    with pytest.raises(ApiError, match="2 recent orders end with 332d766: give more of it"):
        await resolve_order_id(listed, "332d766")
    assert await resolve_order_id(listed, "not-hex") == "not-hex"  # left to the service
    assert await resolve_order_id(listed, first) == first


# -- errors -----------------------------------------------------------------------------


def test_an_error_body_is_one_line_with_its_details() -> None:
    body = {"error": {"code": "validation_error", "message": "invalid request", "details": [
        {"field": "price", "message": "must be greater than 0"},
        {"field": "order_size", "message": "field required"},
    ]}}  # fmt: skip
    assert error_line(422, body) == (
        "error 422 validation_error: invalid request "
        "(price: must be greater than 0; order_size: field required)"
    )
    assert error_line(502, "Bad\nGateway") == "error 502: Bad Gateway"


async def test_refusals_print_one_line_and_exit_2(
    start_app: Callable[..., Awaitable[Client]],
) -> None:
    client = await start_app(api_tokens="alice:alice-token")
    url = _base(client)
    for arguments, expected in [
        (("orders",), "error 401"),
        (("account",), "error 401"),
        (("book", "LTCBTC"), "error 401"),
        (("orders", "--token", "wrong"), "error 401"),
        (("orders", "--token", "alice-token", "--cursor", "bogus"), "error 422"),
        (("watch", "no-such-order", "--token", "alice-token"), "not found"),
        (("submit", "LTCBTC", "sell", "1", "-1", "--token", "alice-token"), "error 422"),
        (("submit", "LTCBTC", "sell", "1", "market", "--tif", "FOK"), "takes no --tif"),
    ]:
        code, output = await _cli(*arguments, "--url", url)
        assert code == 2, (arguments, output)
        assert len(output.strip().splitlines()) == 1 and expected in output, (arguments, output)
    code, output = await _cli("orders", "--token", "alice-token", "--url", url)
    assert (code, output) == (0, "no orders\n")
    code, output = await _cli("orders", "--url", "http://127.0.0.1:9")
    assert code == 2 and output.startswith("error: cannot reach")


async def test_the_token_comes_from_api_token(
    start_app: Callable[..., Awaitable[Client]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await start_app(api_tokens="alice:alice-token")
    monkeypatch.setenv("API_TOKEN", "alice-token")
    monkeypatch.setenv("API_URL", _base(client))
    code, output = await _cli("orders")
    assert (code, output) == (0, "no orders\n")


async def test_output_closed_early_exits_quietly(client: Client) -> None:
    """`python -m app orders | head -1`: no traceback when the reader has gone."""
    await place(client, order_size="1", price="10")
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "orders", "--url", _base(client),
            stdout=write_end, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    _, errors = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and errors == b""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_documents_url_token_and_api_token(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for mention in ("--url", "--token", "API_TOKEN", "API_URL", "127.0.0.1:8080"):
        assert mention in text, (command, mention)


# -- book -------------------------------------------------------------------------------


class CountingView(BookView):
    """A book view whose quotes can be awaited and whose redraws are timed."""

    def __init__(self, symbol: str, out: Output) -> None:
        super().__init__(symbol, out, Precision(), in_place=False)
        self.quote_arrived = asyncio.Event()
        self.draw_times: list[float] = []

    def received(self, message: dict[str, Any]) -> None:
        super().received(message)
        self.quote_arrived.set()

    def draw(self, message: dict[str, Any]) -> None:
        self.draw_times.append(time.monotonic())
        super().draw(message)


async def test_the_book_view_redraws_at_most_rate_times_a_second_and_ends_on_the_last_quote(
    client: Client, emulator: BinanceEmulator, api: Api
) -> None:
    out = Output()
    view = CountingView("LTCBTC", out)
    stop = asyncio.Event()
    rate = 4.0
    following = asyncio.create_task(follow_book(
        api, "LTCBTC", view, rate=rate, stop=stop, announce=lambda line: out.write(line + "\n"),
    ))  # fmt: skip
    await out.wait_for("following LTCBTC")
    await emulator.wait_subscribed(stream("LTCBTC"))
    # A stream of quotes for a second, each one sent when the view has received the last.
    started, quotes = time.monotonic(), 0
    while time.monotonic() - started < 1.0 or quotes < 40:
        quotes += 1
        view.quote_arrived.clear()
        emulator.book_ticker("LTCBTC", str(1000 + quotes), "1", "100000", "2")
        await asyncio.wait_for(view.quote_arrived.wait(), 5)
    await out.wait_for(f"bid {1000 + quotes} x 1", timeout=5)  # the last quote is drawn
    stop.set()
    assert await asyncio.wait_for(following, 5) == 0

    assert view.quotes == quotes
    assert 3 <= view.draws < quotes  # conflated: the quotes came faster than 4 a second
    times = view.draw_times
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1 / rate - 0.01
    last = out.getvalue().splitlines()[-1]
    spread = 100000 - 1000 - quotes
    assert last.startswith(f"LTCBTC  bid {1000 + quotes} x 1  ask 100000 x 2  spread {spread} (")
    assert " bps)  age " in last


def test_the_book_view_draws_depth_levels_when_the_message_has_them() -> None:
    out = io.StringIO()
    view = BookView("BTCUSDT", out, Precision(Decimal("0.01"), Decimal("0.001")), in_place=True,
                    clock=lambda: 1_000_000_000.5)  # fmt: skip
    message = {
        "type": "book", "symbol": "BTCUSDT", "bid": "100", "bid_qty": "1", "ask": "100.5",
        "ask_qty": "2", "ts": "2001-09-09T01:46:40Z",
        "bids": [["100", "1"], ["99.5", "3"]], "asks": [["100.5", "2"], ["101", "4"]],
    }  # fmt: skip
    assert view.render(message) == [
        "BTCUSDT  bid 100.00 x 1.000  ask 100.50 x 2.000  spread 0.50 (49.88 bps)  age 0.5s",
        "  ask           101.00  4.000",
        "  ask           100.50  2.000",
        "  bid           100.00  1.000",
        "  bid            99.50  3.000",
    ]
    view.draw(message)
    view.draw({**message, "bids": [], "asks": []})
    unknown = BookView("BTCUSDT", io.StringIO(), Precision(), in_place=False)
    quote = {"bid": "61828.09", "bid_qty": "1.5", "ask": "61828.1", "ask_qty": "0.25"}
    assert unknown.summary(quote) == (  # without the tick, bid and ask show alike
        "BTCUSDT  bid 61828.09 x 1.5  ask 61828.10 x 0.25  spread 0.01 (0.00 bps)"
    )
    second = out.getvalue().split("\x1b[J", 1)[1]
    assert second.startswith("\r\x1b[4F\x1b[2KBTCUSDT  bid 100.00")  # back over the block
    assert view.draws == 2


async def test_in_depth_mode_the_book_view_shows_the_levels(
    start_app: Callable[..., Awaitable[Client]], emulator: BinanceEmulator
) -> None:
    client = await start_app(market_stream="depth5")
    out = Output()
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        api = Api(session, _base(client), None)
        view = BookView("LTCBTC", out, Precision(), in_place=False)
        following = asyncio.create_task(follow_book(
            api, "LTCBTC", view, stop=stop, announce=lambda line: out.write(line + "\n"),
        ))  # fmt: skip
        await out.wait_for("following LTCBTC")
        await emulator.wait_subscribed(stream("LTCBTC", StreamKind.DEPTH5))
        emulator.depth("LTCBTC", [("10", "1"), ("9.5", "2")], [("11", "3"), ("11.25", "4")])
        await out.wait_for("9.50  2")
        stop.set()
        assert await asyncio.wait_for(following, 5) == 0
    lines = out.getvalue().splitlines()
    summary = "LTCBTC  bid 10.00 x 1  ask 11.00 x 3  spread 1.00 (952.38 bps)  age "
    assert lines[1].startswith(summary)
    assert lines[2:] == [  # asks over bids, best in the middle, prices with alike decimals
        "  ask            11.25  4",
        "  ask            11.00  3",
        "  bid            10.00  1",
        "  bid             9.50  2",
    ]


async def test_book_stops_on_ctrl_c_with_exit_0(client: Client, emulator: BinanceEmulator) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "book", "ltcbtc", "--url", _base(client),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert first.startswith(b"following LTCBTC")
    await emulator.wait_subscribed(stream("LTCBTC"))
    emulator.book_ticker("LTCBTC", "10", "1", "11", "2")
    quote = await asyncio.wait_for(process.stdout.readline(), 10)
    assert quote.startswith(b"LTCBTC  bid 10 x 1  ask 11 x 2")
    process.send_signal(signal.SIGINT)
    _, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, errors
    assert b"Traceback" not in errors


async def test_ctrl_c_stops_watch_without_a_traceback(client: Client) -> None:
    order = await place(client, symbol="QUIETUSDT", order_size="1", price="10")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "watch", order["order_id"], "--url", _base(client),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert first.startswith(f"order {order['order_id']}: ".encode())
    process.send_signal(signal.SIGINT)
    _, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 130 and errors == b""


async def test_book_refuses_a_bad_symbol_in_one_line(api: Api) -> None:
    view = BookView("X", io.StringIO(), Precision(), in_place=False)
    with pytest.raises(ApiError) as refused:
        await follow_book(api, "not a symbol!", view, stop=asyncio.Event())
    assert str(refused.value).startswith("error: ") and "\n" not in str(refused.value)


# -- account ----------------------------------------------------------------------------


async def test_account_shows_balances_and_positions(
    start_app: Callable[..., Awaitable[Client]], emulator: BinanceEmulator
) -> None:
    client = await start_app(paper_balances="BTC:10,LTC:100")
    events = EventLog(client.app)
    try:
        await _filled_at_two_prices(client, emulator, events)
    finally:
        await events.close()
    code, output = await _cli("account", "--url", _base(client))
    assert code == 0, output
    balances, positions = output.split("\n\n")
    rows = {line.split()[0]: line.split()[1:] for line in balances.splitlines()[1:]}
    assert rows["LTC"] == ["97", "0", "97"]
    free_btc = Decimal(10) + Decimal("30.5") * Decimal("0.999")  # the fees in BTC, 0.1%
    assert rows["BTC"][0] == str(free_btc)
    header, position = positions.splitlines()
    assert header.split()[:3] == ["SYMBOL", "QTY", "AVG"]
    assert position.split()[:3] == ["LTCBTC", "-3", "10.166667"]
