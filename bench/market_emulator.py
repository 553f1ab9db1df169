"""The Binance emulator for bench/market.py, in its own process (as bench/emulator_proc.py).

stdin commands, each answered with one line:
- `wait <stream> <connections>`: until the stream is subscribed and that many connections
  were opened;
- `blast <stream> <count> <mode>`: `count` bookTicker frames at once, then `done <s>`.
  mode `quiet`: bids and asks well away from every resting limit (nothing can fill);
  mode `touch`: the same bid level again and again, only the update id changing (an
  order marketable at the touch has already taken it: the hard case).
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
    return [
        {"u": first_id + n, "s": "BENCH", "b": f"{50 + n % 7}.00000000", "B": "1.50000000",
         "a": f"{200 + n % 5}.00000000", "A": "2.50000000"}
        for n in range(count)
    ]  # fmt: skip


async def main() -> None:
    emulator = BinanceEmulator()
    print(await emulator.start(), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    update_id = 10_000_000
    while line := (await reader.readline()).decode().split():
        if line[0] == "wait":
            await emulator.wait_subscribed(line[1], timeout=60)
            await emulator.wait_connections(int(line[2]), timeout=60)
            print("ok", flush=True)
        elif line[0] == "blast":
            stream, count, mode = line[1], int(line[2]), line[3]
            frames = payloads(mode, update_id + 1, count)
            update_id += count
            started = time.perf_counter()
            await emulator.blast(stream, frames)
            print(f"done {time.perf_counter() - started:.4f}", flush=True)
    await emulator.stop()


if __name__ == "__main__":
    asyncio.run(main())
