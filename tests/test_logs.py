"""Production logs: one JSON object per line, with the order and symbol bound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson

from app.emulator.server import BinanceEmulator
from app.logs import BatchedLineWriter, json_line
from tests.service_process import ServiceProcess


async def test_json_logs_name_the_order_and_symbol(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    log_path = tmp_path / "service.log"
    service = ServiceProcess(
        tmp_path / "logs.db", emulator.base_url, log_path=log_path, LOG_LEVEL="info"
    )
    await service.start()
    try:
        status, order = await service.request(
            "POST", "/order/limit",
            json={"symbol": "logusdt", "side": "sell", "order_size": "1.5", "price": "10"},
        )  # fmt: skip
        assert status == 202
        order_id = order["order_id"]
        await emulator.wait_subscribed("logusdt@bookTicker")
        emulator.book_ticker("LOGUSDT", "10.5", "4", "11", "1")
        await service.wait_for_order(order_id, lambda o: o["status"] == "filled")
    finally:
        assert await service.terminate() == 0

    lines = log_path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"event", "level", "timestamp"} <= record.keys() for record in records)
    mine = [r for r in records if r.get("order_id") == order_id]
    events = [r["event"] for r in mine]
    assert events[:2] == ["order.accepted", "order.fill"], events
    for record in mine:
        assert record["symbol"] == "LOGUSDT" and record["level"] == "info"
    fill = mine[1]
    assert (fill["price"], fill["qty"], fill["seq"], fill["status"]) == ("10.5", "1.5", 1, "filled")


class _CountingFile:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.flushes = 0

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        self.flushes += 1


async def test_the_lines_of_one_loop_iteration_are_written_together_before_it_ends() -> None:
    file = _CountingFile()
    writer = BatchedLineWriter(file)  # type: ignore[arg-type]
    writer.msg(b'{"n":1}')
    writer.msg(b'{"n":2}')
    assert file.writes == []  # held until the callbacks ready now have run
    await asyncio.sleep(0)
    assert file.writes == [b'{"n":1}\n{"n":2}\n'] and file.flushes == 1
    writer.msg(b'{"n":3}')
    await asyncio.sleep(0)
    assert file.writes[1:] == [b'{"n":3}\n']


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    file = _CountingFile()
    writer = BatchedLineWriter(file)  # type: ignore[arg-type]
    writer.msg(b'{"n":1}')
    assert file.writes == [b'{"n":1}\n']
    writer.msg(b'{"n":2}')
    assert file.writes == [b'{"n":1}\n', b'{"n":2}\n']


def test_a_loop_closed_with_its_flush_pending_does_not_hold_lines_back() -> None:
    file = _CountingFile()
    writer = BatchedLineWriter(file)  # type: ignore[arg-type]

    async def log_and_stop() -> None:
        writer.msg(b'{"n":1}')
        asyncio.get_running_loop().stop()  # before the flush scheduled just now can run

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_stop())
    loop.close()
    assert file.writes == []

    async def log() -> None:
        writer.msg(b'{"n":2}')
        await asyncio.sleep(0)

    asyncio.run(log())  # a new loop: its flush is scheduled there, and runs
    assert file.writes == [b'{"n":1}\n{"n":2}\n']


def test_a_json_line_has_the_level_the_timestamp_and_the_fields() -> None:
    line = orjson.loads(json_line(None, "warn", {"event": "x.y", "size": "1.5"}))
    assert line["event"] == "x.y" and line["size"] == "1.5" and line["level"] == "warning"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    try:
        raise ValueError("boom")
    except ValueError:
        failed = orjson.loads(json_line(None, "error", {"event": "x.failed", "exc_info": True}))
    assert "ValueError: boom" in failed["exception"] and "exc_info" not in failed
