"""Regenerate docs/screenshot.png from the offline demo, in Debian's Chromium.

    .venv/bin/python docs/screenshot.py

Starts `python -m app demo` on a free port with a throwaway database, places a buy near the
recorded BTCUSDT prices, lets it fill, and photographs the page.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service_process import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


async def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "HTTP_PORT": str(port), "DATABASE_PATH": f"{folder}/demo.db"}
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "demo", "--speed", "4", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                async with asyncio.timeout(30):
                    while True:
                        try:
                            async with session.get(f"{url}/readyz") as ready:
                                if ready.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.1)  # another process: nothing else to await
                async with playwright_page() as page:
                    await page.goto(url)
                    await asyncio.sleep(3)  # some quotes on the chart first
                    body = {"symbol": "BTCUSDT", "side": "buy", "order_size": "0.5",
                            "price": "61850", "timeout_s": 120}  # fmt: skip
                    async with session.post(f"{url}/order/limit", json=body) as response:
                        order = await response.json()
                    async with asyncio.timeout(60):
                        while order["status"] != "filled":
                            await asyncio.sleep(0.5)
                            async with session.get(f"{url}/orders/{order['order_id']}") as r:
                                order = await r.json()
                    await asyncio.sleep(2)  # the page catches up with the last fill
                    await page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))
        finally:
            demo.terminate()
            await demo.wait()


class playwright_page:
    async def __aenter__(self):  # type: ignore[no-untyped-def]
        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        return await self._browser.new_page(viewport={"width": 1280, "height": 800})

    async def __aexit__(self, *_: object) -> None:
        await self._browser.close()
        await self._pw.stop()


if __name__ == "__main__":
    asyncio.run(main())
