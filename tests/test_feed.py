"""The Binance client against the Binance-protocol emulator."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from app.adapters.binance.feed import BinanceFeed
from app.adapters.binance.parsing import MalformedFrame, Response, ServerShutdown, parse_frame
from app.clock import rfc3339
from app.core.domain import BookUpdate, StreamKind
from app.emulator.server import BinanceEmulator
from app.push.hub import book_message


class Received:
    def __init__(self) -> None:
        self.updates: list[BookUpdate] = []
        self.lost: list[set[str]] = []
        self._event = asyncio.Event()
        # Run on each update before it is recorded, as the service and the push hub do
        # inside the feed's receive loop; an exception it raises escapes to the feed.
        self.before: Callable[[BookUpdate], object] | None = None

    def on_update(self, update: BookUpdate) -> None:
        if self.before is not None:
            self.before(update)
        self.updates.append(update)
        self._event.set()

    def on_lost(self, symbols: set[str]) -> None:
        self.lost.append(symbols)

    async def wait(self, count: int, timeout: float = 5.0) -> list[BookUpdate]:
        async with asyncio.timeout(timeout):
            while len(self.updates) < count:
                self._event.clear()
                await self._event.wait()
        return self.updates


@pytest.fixture
async def make_feed(
    emulator: BinanceEmulator,
) -> AsyncIterator[Callable[..., Any]]:
    feeds: list[BinanceFeed] = []

    async def make(
        kind: StreamKind = StreamKind.BOOK_TICKER, **options: Any
    ) -> tuple[BinanceFeed, Received]:
        received = Received()
        options.setdefault("unsubscribe_delay_s", 0.05)
        options.setdefault("backoff_initial_s", 0.05)
        feed = BinanceFeed(emulator.base_url, kind, received.on_update, received.on_lost, **options)
        await feed.start()
        feeds.append(feed)
        return feed, received

    yield make
    for feed in feeds:
        await feed.stop()


def _requests(emulator: BinanceEmulator, method: str) -> list[dict[str, Any]]:
    return [r for _, r in emulator.requests if r.get("method") == method]


async def test_one_connection_for_all_symbols(emulator: BinanceEmulator, make_feed) -> None:  # type: ignore[no-untyped-def]
    feed, received = await make_feed()
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    feed.acquire("ETHUSDT")
    await emulator.wait_subscribed("ethusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "2", "3", "4")
    emulator.book_ticker("ETHUSDT", "5.5", "6", "7", "8.25")
    updates = await received.wait(2)
    assert emulator.connections_opened == 1
    assert {u.symbol for u in updates} == {"BTCUSDT", "ETHUSDT"}
    eth = next(u for u in updates if u.symbol == "ETHUSDT")
    assert eth.bids[0][0].as_tuple() == (0, (5, 5), -1) and str(eth.asks[0][1]) == "8.25"
    assert feed.state()["connected"] is True


async def test_release_unsubscribes_later_and_reacquire_cancels_it(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    feed, received = await make_feed(unsubscribe_delay_s=0.3)
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    feed.release("BTCUSDT")
    feed.acquire("BTCUSDT")  # back before the delay: nothing is sent
    feed.acquire("ETHUSDT")
    await emulator.wait_subscribed("ethusdt@bookTicker")
    feed.release("ETHUSDT")
    await emulator.wait_unsubscribed("ethusdt@bookTicker")
    assert emulator.subscribed("btcusdt@bookTicker")
    assert _requests(emulator, "UNSUBSCRIBE") == [
        {"method": "UNSUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 2}
    ]
    assert {"ETHUSDT"} in received.lost  # its last quote no longer counts


async def test_many_symbols_are_batched_under_the_rate_limit(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    feed, _ = await make_feed()
    feed.acquire("AAA1")
    await emulator.wait_subscribed("aaa1@bookTicker")
    for n in range(300):
        feed.acquire(f"SYM{n}")
    await emulator.wait_subscribed("sym299@bookTicker")
    subscribes = _requests(emulator, "SUBSCRIBE")
    assert len(subscribes) <= 3  # 300 streams in batches, not 300 messages
    assert emulator.closed_for_rate == 0
    assert sum(len(r["params"]) for r in subscribes) == 300


async def test_rate_limit_is_respected_with_churn(emulator: BinanceEmulator, make_feed) -> None:  # type: ignore[no-untyped-def]
    feed, _ = await make_feed(unsubscribe_delay_s=0)
    feed.acquire("BASE")
    await emulator.wait_subscribed("base@bookTicker")
    for n in range(30):  # subscribe/unsubscribe churn, each change as soon as possible
        feed.acquire(f"C{n}")
        await asyncio.sleep(0.01)
        feed.release(f"C{n}")
        await asyncio.sleep(0.01)
    feed.acquire("LAST")
    await emulator.wait_subscribed("last@bookTicker", timeout=10)
    assert emulator.closed_for_rate == 0 and emulator.connections_opened == 1


async def test_a_full_connection_opens_another(emulator: BinanceEmulator, make_feed) -> None:  # type: ignore[no-untyped-def]
    feed, _ = await make_feed(max_streams_per_connection=3)
    for symbol in ("A1", "A2", "A3", "A4", "A5"):
        feed.acquire(symbol)
    await emulator.wait_subscribed("a5@bookTicker")
    await emulator.wait_subscribed("a1@bookTicker")
    assert emulator.connections_opened == 2
    assert sorted(len(s) for s in emulator.subscriptions.values()) == [2, 3]


async def test_drop_reconnects_and_resubscribes(emulator: BinanceEmulator, make_feed) -> None:  # type: ignore[no-untyped-def]
    feed, received = await make_feed()
    feed.acquire("BTCUSDT")
    feed.acquire("ETHUSDT")
    await emulator.wait_subscribed("ethusdt@bookTicker")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    await emulator.drop_connections()
    await emulator.wait_connections(2)
    await emulator.wait_subscribed("btcusdt@bookTicker")
    await emulator.wait_subscribed("ethusdt@bookTicker")
    assert received.lost and received.lost[0] == {"BTCUSDT", "ETHUSDT"}
    emulator.book_ticker("ETHUSDT", "1", "1", "2", "1")
    await received.wait(1)
    assert feed.state()["reconnects"] >= 1


async def test_a_stalled_connection_is_replaced(emulator: BinanceEmulator, make_feed) -> None:  # type: ignore[no-untyped-def]
    feed, received = await make_feed(stall_timeout_s=0.2)
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.stall(True)
    await emulator.wait_connections(2)
    emulator.stall(False)
    probes = _requests(emulator, "LIST_SUBSCRIPTIONS")
    assert probes  # it asked before giving up
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(1)


async def test_a_quiet_but_live_connection_is_kept(emulator: BinanceEmulator, make_feed) -> None:  # type: ignore[no-untyped-def]
    feed, _ = await make_feed(stall_timeout_s=0.1)
    feed.acquire("NOSUCHSYMBOL")  # accepted, never sends
    await emulator.wait_subscribed("nosuchsymbol@bookTicker")
    await asyncio.sleep(0.6)  # several stall periods: each probe is answered
    assert emulator.connections_opened == 1
    assert len(_requests(emulator, "LIST_SUBSCRIPTIONS")) >= 2


async def test_server_shutdown_moves_to_a_new_connection(
    emulator: BinanceEmulator, make_feed
) -> None:  # type: ignore[no-untyped-def]
    feed, received = await make_feed(backoff_initial_s=30)  # no backoff is used
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    await emulator.server_shutdown()
    await emulator.wait_connections(2, timeout=3)
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(1)


async def test_rollover_before_the_24h_cut_leaves_no_gap(
    emulator: BinanceEmulator, make_feed
) -> None:  # type: ignore[no-untyped-def]
    feed, received = await make_feed(max_connection_age_s=0.5)
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    published = 0
    async with asyncio.timeout(10):
        while emulator.connections_opened < 3:  # at least two rollovers
            published += 1
            emulator.book_ticker("BTCUSDT", "1", str(published), "2", "1", update_id=published)
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    ids = sorted({u.update_id for u in received.updates})
    # Every id published while subscribed arrived: make-before-break leaves no hole.
    assert ids == list(range(ids[0], ids[-1] + 1))
    assert ids[-1] >= published - 2
    assert received.lost == []


async def test_depth_frames_take_the_symbol_from_the_stream_name(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    feed, received = await make_feed(StreamKind.DEPTH10)
    feed.acquire("LTCBTC")
    await emulator.wait_subscribed("ltcbtc@depth10@100ms")
    emulator.depth("LTCBTC", bids=[("0.9", "1"), ("1.0", "2"), ("0.8", "0")],
                   asks=[("1.2", "1"), ("1.1", "3")], levels=10)  # fmt: skip
    (update,) = await received.wait(1)
    assert update.symbol == "LTCBTC" and update.full_depth
    assert [str(p) for p, _ in update.bids] == ["1.0", "0.9"]  # best first, zero dropped
    assert [str(p) for p, _ in update.asks] == ["1.1", "1.2"]


async def test_malformed_frames_are_counted_and_skipped(
    emulator: BinanceEmulator, make_feed
) -> None:  # type: ignore[no-untyped-def]
    feed, received = await make_feed()
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.publish("btcusdt@bookTicker", {"u": "x", "b": 1})
    emulator.publish(
        "btcusdt@bookTicker", {"u": 5, "s": "BTCUSDT", "b": "NaN", "B": "1", "a": "2", "A": "1"}
    )
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(1)
    assert feed.state()["malformed"] == 2 and len(received.updates) == 1


async def test_misspelled_streams_never_send(emulator: BinanceEmulator) -> None:
    assert not emulator.subscribed("btcusdt@bookticker")
    assert StreamKind.BOOK_TICKER.stream_name("BTCUSDT") == "btcusdt@bookTicker"


def test_parse_frame_kinds() -> None:
    assert parse_frame(b'{"result": null, "id": 3}', 0) == Response(3, None, None)
    refused = parse_frame(b'{"error": {"code": 2, "msg": "bad"}, "id": 4}', 0)
    assert isinstance(refused, Response) and refused.error == {"code": 2, "msg": "bad"}
    assert isinstance(parse_frame(b'{"e": "serverShutdown", "E": 1}', 0), ServerShutdown)
    combined = b'{"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}}'
    assert isinstance(parse_frame(combined, 0), ServerShutdown)
    assert parse_frame(b'{"stream": "btcusdt@trade", "data": {"e": "trade"}}', 0) is None
    short_level = b'{"stream": "x@depth5@100ms", "data": {"lastUpdateId": 1, "bids": [["1"]]}}'
    for bad in (b"not json", b"[1]", b'{"stream": 1, "data": {}}', b'{"hello": 1}', short_level):
        with pytest.raises(MalformedFrame):
            parse_frame(bad, 0)


async def test_rollover_of_more_streams_than_the_url_holds_leaves_no_gap(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.adapters.binance.feed

    monkeypatch.setattr(
        app.adapters.binance.feed, "MAX_URL_STREAMS_CHARS", 40
    )  # two streams per URL
    feed, received = await make_feed(max_connection_age_s=0.6)
    symbols = [f"S{n}USDT" for n in range(6)]
    for symbol in symbols:
        feed.acquire(symbol)
    for symbol in symbols:
        await emulator.wait_subscribed(f"{symbol.lower()}@bookTicker")
    published = 0
    async with asyncio.timeout(15):
        while emulator.connections_opened < 3:  # at least two rollovers
            published += 1
            for symbol in symbols:
                emulator.book_ticker(symbol, "1", "1", "2", "1", update_id=published)
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)
    for symbol in symbols:
        ids = sorted({u.update_id for u in received.updates if u.symbol == symbol})
        assert ids == list(range(ids[0], ids[-1] + 1)), symbol  # nothing missing
        assert ids[-1] >= published - 2
    assert received.lost == []


async def test_a_busy_connection_outlives_many_stall_periods_and_loses_nothing(
    emulator: BinanceEmulator, make_feed
) -> None:  # type: ignore[no-untyped-def]
    # The stall deadline is checked lazily (one timer spans many frames and fires while
    # frames are flowing); firing mid-stream must neither replace the socket nor drop or
    # reorder a frame.
    feed, received = await make_feed(stall_timeout_s=0.02)
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    sent = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + 0.5  # 25 stall periods
    while loop.time() < until:
        for _ in range(20):
            sent += 1
            emulator.book_ticker("BTCUSDT", "1", str(sent), "2", "1", update_id=sent)
        await asyncio.sleep(0.005)
    updates = await received.wait(sent)
    assert [u.update_id for u in updates] == list(range(1, sent + 1))
    assert emulator.connections_opened == 1
    assert feed.state()["reconnects"] == 0


# -- issue #9: a bad frame or a failing callback never silently ends a connection --------


async def test_a_poison_quote_is_malformed_and_later_frames_still_arrive(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    feed, received = await make_feed()
    received.before = book_message  # what the push hub does with every quote
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1" * 150, "1", "2", "1", update_id=1)
    emulator.book_ticker("BTCUSDT", "1", "1", "1E+999999", "1", update_id=2)
    emulator.book_ticker("BTCUSDT", "1", "٣", "2", "1", update_id=3)
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1", update_id=4)
    await received.wait(1)
    assert [u.update_id for u in received.updates] == [4]
    assert feed.state()["malformed"] == 3
    assert emulator.connections_opened == 1 and feed.state()["reconnects"] == 0


async def test_an_exception_in_on_update_is_logged_and_the_socket_goes_on(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    feed, received = await make_feed()

    def fail_on_two(update: BookUpdate) -> None:
        if update.update_id == 2:
            raise RuntimeError("a bug downstream")

    received.before = fail_on_two
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    with capture_logs() as logs:
        for update_id in (1, 2, 3):
            emulator.book_ticker("BTCUSDT", "1", "1", "2", "1", update_id=update_id)
        await received.wait(2)
    assert [u.update_id for u in received.updates] == [1, 3]
    assert emulator.connections_opened == 1 and feed.state()["reconnects"] == 0
    assert feed.state()["callback_errors"] == 1
    (entry,) = [e for e in logs if e["event"] == "feed.callback_failed"]
    assert entry["callback"] == "on_update" and "a bug downstream" in entry["error"]
    assert entry["symbol"] == "BTCUSDT" and entry["update_id"] == 2


async def test_an_exception_in_on_stream_lost_does_not_stop_reconnecting(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    feed, received = await make_feed()

    def on_lost(symbols: set[str]) -> None:
        received.lost.append(symbols)
        raise RuntimeError("a bug in on_stream_lost")

    feed.on_stream_lost = on_lost
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    with capture_logs() as logs:
        await emulator.drop_connections()
        await emulator.wait_connections(2)
        await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(1)
    assert received.lost == [{"BTCUSDT"}]
    assert [e["callback"] for e in logs if e["event"] == "feed.callback_failed"] == [
        "on_stream_lost"
    ]


async def test_an_unexpected_error_in_the_connection_restarts_it_after_backoff(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.adapters.binance.feed

    real_open = app.adapters.binance.feed._Connection._open
    calls = 0

    async def open_once_broken(self: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("not a network error")
        return await real_open(self)

    monkeypatch.setattr(app.adapters.binance.feed._Connection, "_open", open_once_broken)
    feed, received = await make_feed()
    with capture_logs() as logs:
        feed.acquire("BTCUSDT")
        await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(1)
    assert calls == 2
    (crash,) = [e for e in logs if e["event"] == "feed.connection_crashed"]
    assert "not a network error" in crash["error"] and crash["retry_in"] > 0


# -- issue #9: stall detection within the configured timeout ------------------------------


async def test_a_silent_upstream_is_replaced_within_the_stall_timeout(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    stall = 1.0
    feed, received = await make_feed(stall_timeout_s=stall)
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(1)  # the last frame the socket will see: silence starts now
    loop = asyncio.get_running_loop()
    started = loop.time()
    emulator.stall(True)
    await emulator.wait_connections(2, timeout=5 * stall)
    elapsed = loop.time() - started
    emulator.stall(False)
    assert _requests(emulator, "LIST_SUBSCRIPTIONS")  # it asked before giving up
    # Given up at the stall timeout, not before it and not twice it (the bug: ~2 x).
    assert 0.8 * stall <= elapsed < 1.35 * stall, elapsed
    await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
    await received.wait(2)
    assert feed.down_since() is None and feed.state()["connected"] is True


# -- issue #9: a bound on upstream frames ---------------------------------------------------


async def test_an_oversize_frame_replaces_the_connection(
    emulator: BinanceEmulator,
    make_feed,  # type: ignore[no-untyped-def]
) -> None:
    import app.adapters.binance.feed

    feed, received = await make_feed()
    feed.acquire("BTCUSDT")
    await emulator.wait_subscribed("btcusdt@bookTicker")
    limit = app.adapters.binance.feed.MAX_FRAME_BYTES
    assert 64 * 1024 <= limit <= 16 * 1024 * 1024  # depth20 frames are a few KB
    huge = {"u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1", "x": "0" * limit}
    with capture_logs() as logs:
        emulator.publish("btcusdt@bookTicker", huge)
        await emulator.wait_connections(2)
        await emulator.wait_subscribed("btcusdt@bookTicker")
    emulator.book_ticker("BTCUSDT", "1", "1", "2", "1", update_id=2)
    await received.wait(1)
    assert [u.update_id for u in received.updates] == [2]  # the oversize one never got in
    (lost,) = [e for e in logs if e["event"] == "feed.connection_lost"]
    assert "too big" in lost["error"] and "1009" in lost["error"], lost


# -- issue #9: an unreachable upstream is said once, plainly; down_since ------------------


async def test_an_unreachable_upstream_is_logged_once_and_down_since_is_kept() -> None:
    with socket.socket() as probe:  # a local port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received = Received()
    feed = BinanceFeed(
        f"ws://127.0.0.1:{port}", StreamKind.BOOK_TICKER, received.on_update, received.on_lost,
        backoff_initial_s=0.01, backoff_max_s=0.05,
    )  # fmt: skip
    failures = 0
    enough = asyncio.Event()
    real_delay = feed.backoff_delay

    def counting_delay(count: int) -> float:
        nonlocal failures
        failures += 1
        if failures >= 5:
            enough.set()
        return real_delay(count)

    feed.backoff_delay = counting_delay  # type: ignore[method-assign, assignment]
    await feed.start()
    emulator = BinanceEmulator()
    try:
        before = time.time()
        with capture_logs() as logs:
            feed.acquire("BTCUSDT")
            assert feed.down_since("BTCUSDT") is None  # not down before a first failure
            async with asyncio.timeout(10):
                await enough.wait()
        loud = [e for e in logs if e["log_level"] in {"warning", "error", "critical"}]
        assert [e["event"] for e in loud] == ["feed.unreachable"], loud
        (said,) = loud
        assert f"ws://127.0.0.1:{port}" in said["error"] and "retrying" in said["error"]
        assert "python -m app demo" in said["error"]
        state = feed.state()
        assert state["connected"] is False
        down_since = feed.down_since("BTCUSDT")
        assert down_since is not None and before <= down_since <= time.time()
        assert feed.down_since() == down_since
        assert state["down_since"] == rfc3339(int(down_since * 1_000_000))
        assert state["connections"][0]["failures"] >= 5
        # Upstream comes back on that port: connected again, no longer down.
        await emulator.start(port=port)
        await emulator.wait_subscribed("btcusdt@bookTicker", timeout=10)
        emulator.book_ticker("BTCUSDT", "1", "1", "2", "1")
        await received.wait(1)
        assert feed.down_since("BTCUSDT") is None and feed.down_since() is None
        assert feed.state()["connected"] is True and feed.state()["down_since"] is None
    finally:
        await feed.stop()
        await emulator.stop()
