"""Regenerate docs/screenshot.png from the offline demo, in Debian's Chromium.

    .venv/bin/python docs/screenshot.py

Starts `python -m app demo` on a free port with a throwaway database and paper balances,
places a buy near the recorded BTCUSDT prices and lets it fill for a while before the page is
opened (the chart starts with the server's recent quotes and those fills), then a market buy
and a sell resting far above the market, and photographs the page.
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
        env = {
            **os.environ, "HTTP_PORT": str(port), "DATABASE_PATH": f"{folder}/demo.db",
            "PAPER_BALANCES": "USDT:100000,BTC:1",
        }  # fmt: skip
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
                body = {"symbol": "BTCUSDT", "side": "buy", "order_size": "0.5",
                        "price": "61850", "timeout_s": 300}  # fmt: skip
                order = await post(session, f"{url}/order/limit", body)
                await asyncio.sleep(8)  # the server keeps these quotes and fills for the page
                async with playwright_page() as page:
                    await page.goto(url)
                    await page.wait_for_selector('#conn[data-state="open"]')
                    market = {"symbol": "BTCUSDT", "side": "buy", "order_size": "0.05"}
                    await post(session, f"{url}/order/market", market)
                    resting = {"symbol": "BTCUSDT", "side": "sell", "order_size": "0.3",
                               "price": "70000", "timeout_s": 600}  # fmt: skip
                    await post(session, f"{url}/order/limit", resting)
                    async with asyncio.timeout(60):
                        while order["status"] != "filled":
                            await asyncio.sleep(0.5)
                            async with session.get(f"{url}/orders/{order['order_id']}") as r:
                                order = await r.json()
                    await page.click(f'tr[data-order-id="{order["order_id"]}"] .open')
                    await asyncio.sleep(3)  # the page catches up with the last fill
                    await page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))
        finally:
            demo.terminate()
            await demo.wait()


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> dict:  # type: ignore[type-arg]
    async with session.post(url, json=body) as response:
        answer: dict = await response.json()  # type: ignore[type-arg]
        if response.status not in (200, 202):
            raise RuntimeError(f"{url}: {response.status} {answer}")
        return answer


class playwright_page:
    async def __aenter__(self):  # type: ignore[no-untyped-def]
        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        return await self._browser.new_page(viewport={"width": 1680, "height": 940})

    async def __aexit__(self, *_: object) -> None:
        await self._browser.close()
        await self._pw.stop()


if __name__ == "__main__":
    asyncio.run(main())
