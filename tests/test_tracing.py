"""Tracing (app/tracing.py): one trace per order, POST → queue → executor → commit → push."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from app import tracing
from app.core.commands import OrderCommand
from app.emulator.server import BinanceEmulator
from app.keys import COMMANDS
from app.settings import Settings
from tests.conftest import EventLog
from tests.helpers import place, stream
from tests.test_ws import receive_until

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

StartApp = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.export_to(exporter)
    yield exporter
    tracing.shutdown()


async def finished(
    exporter: InMemorySpanExporter, done: Callable[[list[ReadableSpan]], bool]
) -> list[ReadableSpan]:
    """The finished spans once `done` holds for them (a span ends after its frame is out)."""
    async with asyncio.timeout(5):
        while True:
            spans = list(exporter.get_finished_spans())
            if done(spans):
                return spans
            await asyncio.sleep(0.01)


def named(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    by_name: dict[str, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        by_name[span.name].append(span)
    return by_name


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def id_of(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def subscribe(ws: Any, order_id: str) -> None:
    await ws.send_json({"op": "subscribe", "order_id": order_id})
    await receive_until(ws, lambda m: m.get("event") == "snapshot")


async def test_one_trace_covers_an_order_from_the_post_to_the_push(
    start_app: StartApp, emulator: BinanceEmulator, exporter: InMemorySpanExporter
) -> None:
    client = await start_app()
    order_id = (await place(client, symbol="BTCUSDT", order_size="25", price="42"))["order_id"]
    async with client.ws_connect("/ws") as ws:
        await subscribe(ws, order_id)
        await emulator.wait_subscribed(stream("BTCUSDT"))
        emulator.book_ticker("BTCUSDT", "42", "5", "43", "1")
        await receive_until(ws, lambda m: m.get("event") == "fill")
        emulator.book_ticker("BTCUSDT", "42.5", "30", "43", "1")
        await receive_until(ws, lambda m: m.get("event") == "filled")
    # accepted, fill, fill, filled: each pushed once, in a span of its own
    spans = await finished(exporter, lambda s: len(named(s)["push.order"]) == 4)

    assert len({span.context.trace_id for span in spans if span.context}) == 1
    by_name = named(spans)
    assert {name: len(found) for name, found in by_name.items()} == {
        "POST /order/limit": 1, "intake.store_insert": 1, "intake.send_command": 1,
        "execution.add_order": 1, "execution.fill": 2, "execution.commit": 2,
        "execution.publish": 2, "push.order": 4,
    }  # fmt: skip
    [post] = by_name["POST /order/limit"]
    [insert] = by_name["intake.store_insert"]
    [send] = by_name["intake.send_command"]
    [add] = by_name["execution.add_order"]
    assert post.parent is None and post.kind is SpanKind.SERVER
    assert dict(post.attributes or {}) == {
        "order_id": order_id, "symbol": "BTCUSDT", "side": "sell", "status": "open",
        "http.response.status_code": 202,
    }  # fmt: skip
    assert parent_of(insert) == parent_of(send) == id_of(post)
    assert send.kind is SpanKind.PRODUCER
    assert parent_of(add) == id_of(send) and add.kind is SpanKind.CONSUMER

    fills = sorted(by_name["execution.fill"], key=lambda span: str((span.attributes or {})["seq"]))
    assert [
        {k: v for k, v in (span.attributes or {}).items() if k != "update_id"} for span in fills
    ] == [
        {"order_id": order_id, "symbol": "BTCUSDT", "side": "sell",
         "status": "partially_filled", "seq": 1, "price": "42", "qty": "5"},
        {"order_id": order_id, "symbol": "BTCUSDT", "side": "sell",
         "status": "filled", "seq": 2, "price": "42.5", "qty": "20"},
    ]  # fmt: skip
    assert all(parent_of(fill) == id_of(send) for fill in fills)
    # Each fill's batch: commit, then publish, both inside the fill's span.
    fill_ids = [id_of(fill) for fill in fills]
    for name in ("execution.commit", "execution.publish"):
        assert sorted(map(parent_of, by_name[name])) == sorted(fill_ids)  # type: ignore[type-var]
    for fill in fills:
        commit = next(c for c in by_name["execution.commit"] if parent_of(c) == id_of(fill))
        publish = next(p for p in by_name["execution.publish"] if parent_of(p) == id_of(fill))
        assert fill.start_time <= commit.start_time  # type: ignore[operator]
        assert commit.end_time <= publish.start_time <= publish.end_time <= fill.end_time  # type: ignore[operator]

    parents = {id_of(post): "the POST", fill_ids[0]: "fill 1", fill_ids[1]: "fill 2"}
    pushes = sorted(
        ((span.attributes or {})["event"], parents[parent_of(span)])  # type: ignore[index]
        for span in by_name["push.order"]
    )
    assert pushes == [
        ("accepted", "the POST"), ("fill", "fill 1"), ("fill", "fill 2"), ("filled", "fill 2")
    ]  # fmt: skip
    for span in by_name["push.order"]:
        assert (span.attributes or {})["order_id"] == order_id
        watching = 0 if (span.attributes or {})["event"] == "accepted" else 1
        assert (span.attributes or {})["clients"] == watching  # the /ws client got the rest


async def test_a_batch_of_several_orders_commits_in_one_trace_and_links_the_others(
    start_app: StartApp, emulator: BinanceEmulator, exporter: InMemorySpanExporter
) -> None:
    client = await start_app()
    ids = [(await place(client, order_size="1", price="10"))["order_id"] for _ in range(2)]
    await emulator.wait_subscribed(stream("LTCBTC"))
    await finished(exporter, lambda s: len(named(s)["execution.add_order"]) == 2)
    emulator.book_ticker("LTCBTC", "10", "5", "11", "1")  # one quote fills both at once
    spans = await finished(exporter, lambda s: len(named(s)["push.order"]) == 6)

    by_name = named(spans)
    traces = {
        (span.attributes or {})["order_id"]: span.context.trace_id
        for span in by_name["POST /order/limit"]
        if span.context
    }
    assert set(traces) == set(ids) and len(set(traces.values())) == 2  # a trace per order
    fills = {(span.attributes or {})["order_id"]: span for span in by_name["execution.fill"]}
    for order_id, fill in fills.items():
        assert fill.context and fill.context.trace_id == traces[order_id]
    [commit] = by_name["execution.commit"]
    assert (commit.attributes or {})["batch.size"] == 2
    first = next(f for f in fills.values() if id_of(f) == parent_of(commit))
    [other] = [f for f in fills.values() if f is not first]
    assert commit.context and first.context and commit.context.trace_id == first.context.trace_id
    assert [link.context.span_id for link in commit.links] == [id_of(other)]
    assert [link.context.trace_id for link in commit.links] == [other.context.trace_id]  # type: ignore[union-attr]


async def test_a_cancel_ends_the_order_in_its_trace(
    start_app: StartApp, emulator: BinanceEmulator, exporter: InMemorySpanExporter
) -> None:
    client = await start_app()
    order_id = (await place(client, order_size="1", price="10"))["order_id"]
    response = await client.delete(f"/orders/{order_id}")
    assert response.status == 200
    spans = await finished(exporter, lambda s: len(named(s)["push.order"]) == 2)

    by_name = named(spans)
    assert len({span.context.trace_id for span in spans if span.context}) == 1
    [send] = by_name["intake.send_command"]
    [end] = by_name["execution.end"]
    assert parent_of(end) == id_of(send)
    assert (end.attributes or {})["status"] == "cancelled"
    [commit] = by_name["execution.commit"]
    assert parent_of(commit) == id_of(end)
    [pushed] = [p for p in by_name["push.order"] if (p.attributes or {})["event"] == "cancelled"]
    assert parent_of(pushed) == id_of(end)


@pytest.fixture
def off_but_ready(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> InMemorySpanExporter:
    """Tracing off by the flag alone, an exporter behind it: any span begun regardless
    of the flag would land in it."""
    monkeypatch.setattr(tracing, "ENABLED", False)
    return exporter


async def test_with_tracing_off_nothing_is_recorded_or_carried(
    start_app: StartApp,
    emulator: BinanceEmulator,
    off_but_ready: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await start_app()
    sent: list[OrderCommand] = []
    queue = client.app[COMMANDS]
    send = queue.send

    async def record(command: OrderCommand) -> None:
        sent.append(command)
        await send(command)

    monkeypatch.setattr(queue, "send", record)
    events = EventLog(client.app)
    order_id = (await place(client, order_size="3", price="10"))["order_id"]
    async with client.ws_connect("/ws") as ws:
        await subscribe(ws, order_id)
        await emulator.wait_subscribed(stream("LTCBTC"))
        emulator.book_ticker("LTCBTC", "10", "1", "11", "1")
        await receive_until(ws, lambda m: m.get("event") == "fill")
        emulator.book_ticker("LTCBTC", "10.5", "5", "11", "1")
        await receive_until(ws, lambda m: m.get("event") == "filled")
    await events.wait_for(order_id, "filled")
    await events.close()
    assert [event.kind for event in events.of(order_id)] == ["accepted", "fill", "fill", "filled"]
    assert all(event.trace is None for event in events.events)
    assert sent and all(getattr(command, "trace", None) is None for command in sent)
    assert off_but_ready.get_finished_spans() == ()


def test_tracing_off_imports_no_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from app.application import create_app\n"
        "from app.settings import Settings\n"
        "create_app(Settings(_env_file=None))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_tracing_setting_is_off_console_or_otlp() -> None:
    assert Settings(_env_file=None).tracing == "off"  # type: ignore[call-arg]
    assert Settings(_env_file=None, tracing="otlp").tracing == "otlp"  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="tracing"):
        Settings(_env_file=None, tracing="zipkin")  # type: ignore[call-arg, arg-type]


@pytest.fixture
def console_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    from opentelemetry.sdk.trace import export

    out = io.StringIO()

    class ToBuffer(export.ConsoleSpanExporter):
        def __init__(self) -> None:
            super().__init__(out=out)

    monkeypatch.setattr(export, "ConsoleSpanExporter", ToBuffer)
    yield out
    tracing.shutdown()


async def test_tracing_console_exports_an_orders_spans_by_the_end(
    start_app: StartApp, emulator: BinanceEmulator, console_output: io.StringIO
) -> None:
    client = await start_app(tracing="console")
    assert tracing.ENABLED
    order_id = (await place(client, order_size="1", price="10"))["order_id"]
    await client.close()  # the last spans are flushed at shutdown
    assert not tracing.ENABLED
    written = console_output.getvalue()
    assert '"name": "POST /order/limit"' in written and f'"order_id": "{order_id}"' in written
    assert '"service.name": "trade-executor"' in written
