"""Profile order intake under load: `python -m bench.profile_intake` (needs pyinstrument)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from pyinstrument import Profiler

from app.application import create_app
from app.emulator.server import BinanceEmulator
from app.logs import configure_logging
from app.settings import Settings
from bench.__main__ import HERE
from tests.service_process import free_port


async def main() -> None:
    configure_logging("json", "error")
    exchange = BinanceEmulator()  # exchange info only (the orders are checked, as deployed)
    exchange.list_every_symbol = True
    await exchange.start()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_path=Path(folder) / "intake.db",
            binance_ws_url="ws://127.0.0.1:9",
            binance_rest_url=exchange.rest_url,
            rate_limit_per_s=0,
            max_open_orders=0,
            log_level="error",
        )
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        profiler = Profiler(async_mode="disabled")
        profiler.start()
        load = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "load_client.py"),
            f"http://127.0.0.1:{port}/order/limit", "64", "4",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await load.communicate()
        profiler.stop()
        print(out.decode())
        print(profiler.output_text(unicode=True, color=False))
        await runner.cleanup()
    await exchange.stop()


if __name__ == "__main__":
    asyncio.run(main())
