"""Production logs: one JSON object per line, with the order and symbol bound."""

from __future__ import annotations

import json
from pathlib import Path

from app.emulator.server import BinanceEmulator
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
