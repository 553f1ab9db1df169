"""The page in a real headless Chromium (Debian's), driven by Playwright.

Submits an order through the form, sees its fills arrive live in the table, the fill log
and as chart markers, and saves a screenshot under artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.emulator.server import BinanceEmulator

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"

pytestmark = pytest.mark.slow

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


async def _quotes(emulator: BinanceEmulator, stop: asyncio.Event) -> None:
    """A live-looking BTCUSDT market whose asks stay above 101.5 (the test order's limit)
    until the test moves them: asks from 101.6 to 102.2."""
    step = 0
    while not stop.is_set():
        step += 1
        bid = 100 + (step % 7) / 10
        emulator.book_ticker("BTCUSDT", f"{bid:.1f}", "3", f"{bid + 1.6:.1f}", "0.4")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


@contextlib.asynccontextmanager
async def _live_page(
    client: TestClient,  # type: ignore[type-arg]
    emulator: BinanceEmulator,
) -> AsyncIterator[tuple[Any, list[str], Callable[[], Awaitable[None]]]]:
    """The page open in Chromium on a live-looking BTCUSDT market (`_quotes`), connected and
    drawing quotes; yields the page, the page errors seen, and a way to stop the market."""
    stop = asyncio.Event()
    market = asyncio.create_task(_quotes(emulator, stop))

    async def stop_market() -> None:
        stop.set()
        await market

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"http://{client.host}:{client.port}/")
            await page.wait_for_selector('#conn[data-state="open"]', timeout=10_000)
            await page.wait_for_function("window.executor.state.lastTime.bid > 0", timeout=10_000)
            yield page, errors, stop_market
        finally:
            await browser.close()
            await stop_market()


async def test_submit_through_the_form_and_watch_it_fill(
    client: TestClient,
    emulator: BinanceEmulator,  # type: ignore[type-arg]
) -> None:
    async with _live_page(client, emulator) as (page, errors, stop_market):
        await page.fill("#f-symbol", "btcusdt")
        await page.click("label.side.buy")
        await page.fill("#f-size", "1")
        await page.fill("#f-price", "101.5")
        await page.fill("#f-timeout", "60")
        await page.click("#submit")
        row = page.locator("#orders tbody tr[data-order-id]").first
        await row.wait_for(timeout=5_000)
        order_id = await row.get_attribute("data-order-id")
        assert order_id and len(order_id) == 32
        await page.wait_for_selector(f'tr[data-order-id="{order_id}"][data-status="open"]')

        await stop_market()
        await emulator.wait_subscribed("btcusdt@bookTicker")
        emulator.book_ticker("BTCUSDT", "100", "3", "101.5", "0.4")  # fill 1: 0.4
        await page.wait_for_selector(
            f'tr[data-order-id="{order_id}"][data-status="partially_filled"]', timeout=5_000
        )
        emulator.book_ticker("BTCUSDT", "100", "3", "101", "5")  # fill 2: the other 0.6
        await page.wait_for_selector(
            f'tr[data-order-id="{order_id}"][data-status="filled"]', timeout=5_000
        )
        await page.wait_for_function("document.querySelectorAll('#fills tbody tr').length === 2")
        fills = await page.locator("#fills tbody tr td:nth-child(3)").all_inner_texts()
        assert sorted(fills) == ["101", "101.5"]
        fills_drawn = await page.evaluate(
            "[...window.executor.state.fills.values()].map(f => `${f.qty} @ ${f.price}`)"
        )
        assert sorted(fills_drawn) == ["0.4 @ 101.5", "0.6 @ 101"]
        await page.wait_for_function("window.executor.state.markers.ask.length >= 1")
        progress = await page.locator(
            f'tr[data-order-id="{order_id}"] [role=progressbar]'
        ).get_attribute("aria-valuenow")
        assert progress == "100"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "page.png"), full_page=True)
        assert errors == []


async def test_a_market_order_through_the_form(
    client: TestClient,
    emulator: BinanceEmulator,  # type: ignore[type-arg]
) -> None:
    async with _live_page(client, emulator) as (page, errors, _):
        await page.fill("#f-symbol", "BTCUSDT")
        await page.click("label.side.buy")
        await page.fill("#f-size", "1")
        await page.select_option("#f-kind", "market")
        assert await page.is_disabled("#f-price")  # no price: the form needs none
        await page.click("#submit")
        row = page.locator("#orders tbody tr[data-order-id]").first
        await row.wait_for(timeout=5_000)
        order_id = await row.get_attribute("data-order-id")
        # It meets the current quote (0.4 at the ask), and the rest expires.
        await page.wait_for_selector(
            f'tr[data-order-id="{order_id}"][data-status="expired"]', timeout=5_000
        )
        cells = await row.locator("td").all_inner_texts()
        assert "market" in cells
        response = await client.get(f"/orders/{order_id}")
        order = await response.json()
        assert order["type"] == "market" and order["filled_qty"] == "0.4"
        assert errors == []


async def test_the_page_asks_for_the_token_once(start_app) -> None:  # type: ignore[no-untyped-def]
    """In a dialog of the page (not prompt()), once, whatever number of requests needed it."""
    client = await start_app(api_tokens="alice:alice-token")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            prompts: list[str] = []
            page.on("dialog", lambda dialog: prompts.append(dialog.message))
            await page.goto(f"http://{client.host}:{client.port}/")
            await page.wait_for_selector("#token-dialog[open]", timeout=10_000)
            assert await page.evaluate("document.activeElement.id") == "token-input"
            await page.keyboard.type("alice-token")
            await page.keyboard.press("Enter")
            await page.wait_for_selector('#conn[data-state="open"]', timeout=10_000)
            await page.fill("#f-size", "1")
            await page.fill("#f-price", "1")
            await page.click("#submit")
            await page.locator("#orders tbody tr[data-order-id]").first.wait_for(timeout=5_000)
            assert prompts == []  # no native prompt()
            assert not await page.locator("#token-dialog[open]").count()
        finally:
            await browser.close()
