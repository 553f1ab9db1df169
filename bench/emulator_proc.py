"""A Binance emulator in its own process: prints its URL, then blasts frames on command.

It also serves exchange info (`rest_url_of` its URL), every made-up symbol listed with
permissive filters, so a service pointed at it checks orders without reaching Binance.

stdin commands: `blast <stream> <count> [mode]` writes `count` pre-encoded bookTicker
frames to every subscriber at once (far faster than any consumer reads them) and prints
`done <seconds>`; mode `quiet` (the default): bids and asks well away from every resting
limit (nothing can fill); mode `touch`: the same bid level again and again, only the update
id changing (an order marketable at the touch has already taken it: the hard case of
bench/market.py). `quote`, `wait` as below.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from app.emulator.server import BinanceEmulator

TOUCH_BID = "1000.00000000"  # the best resting sell limit (1000): marketable at the touch


def payloads(mode: str, first_id: int, count: int) -> list[dict[str, Any]]:
    if mode == "touch":
        return [
            {"u": first_id + n, "s": "BENCH", "b": TOUCH_BID, "B": "1.50000000",
             "a": "1000000.00000000", "A": "2.50000000"}
            for n in range(count)
        ]  # fmt: skip
    if mode != "quiet":
        raise ValueError(f"unknown blast mode {mode!r}")
    return [
        {"u": first_id + n, "s": "BENCH", "b": f"{50 + n % 7}.00000000", "B": "1.50000000",
         "a": f"{200 + n % 5}.00000000", "A": "2.50000000"}
        for n in range(count)
    ]  # fmt: skip


async def main() -> None:
    emulator = BinanceEmulator()
    emulator.list_every_symbol = True
    print(await emulator.start(), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    update_id = 10_000_000
    while line := (await reader.readline()).decode().split():
        if line[0] == "quote":  # quote <stream> <SYMBOL> <bid>: a bid that fills sells
            update_id += 1
            emulator.publish(line[1], {"u": update_id, "s": line[2], "b": line[3], "B": "1",
                                       "a": "1000000", "A": "1"})  # fmt: skip
            print("ok", flush=True)
        elif line[0] == "wait":
            await emulator.wait_subscribed(line[1], timeout=60)
            await emulator.wait_connections(int(line[2]), timeout=60)
            print("ok", flush=True)
        elif line[0] == "blast":
            stream, count = line[1], int(line[2])
            mode = line[3] if len(line) > 3 else "quiet"
            frames = payloads(mode, update_id + 1, count)
            update_id += count
            started = time.perf_counter()
            await emulator.blast(stream, frames)
            print(f"done {time.perf_counter() - started:.4f}", flush=True)
    await emulator.stop()


if __name__ == "__main__":
    asyncio.run(main())
