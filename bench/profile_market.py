"""Profile the market-data path: `python -m bench.profile_market` (needs pyinstrument)."""

from __future__ import annotations

import asyncio

from pyinstrument import Profiler

from bench.__main__ import HERE, Child, bench_service_updates


async def main() -> None:
    emulator = await Child.start(str(HERE / "emulator_proc.py"))
    url = await emulator.line()
    profiler = Profiler(async_mode="disabled")
    profiler.start()
    print(await bench_service_updates(emulator, url, 200_000, 10_000, 1))
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False))
    await emulator.stop()


if __name__ == "__main__":
    asyncio.run(main())
