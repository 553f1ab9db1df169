"""kill -9 during a quote blast: afterwards, every balance and position is exactly what the
stored orders and fills imply (CONTRACT.md, "Paper account": balances change in the same
transaction as the fill or order that causes them).

The expected balances are recomputed from what is stored, with the pure core
(app.core.balances): each owner's opening balances once it was seen, each order's lock
when accepted, each fill, and the release when the order ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from app.core.account import (
    AssetBalance,
    assets_of,
    deltas_on_accept,
    deltas_on_end,
    deltas_on_fills,
    parse_paper_balances,
)
from app.core.decimals import ZERO
from app.core.domain import Side
from app.core.fees import fee_in_quote
from app.emulator.server import BinanceEmulator
from tests.helpers import stream
from tests.service_process import ServiceProcess

pytestmark = pytest.mark.slow

OPENING = "USDT:20000,BTC:150"
TOKENS = {"alice": "ta", "bob": "tb", "carol": "tc"}
FINAL = {"filled", "expired", "cancelled", "rejected"}


@dataclass
class StoredOrder:
    side: Side
    order_size: Decimal
    price: Decimal | None
    reserve: Decimal | None
    filled_qty: Decimal = ZERO
    notional: Decimal = ZERO


@dataclass(frozen=True)
class StoredFill:
    price: Decimal
    qty: Decimal
    fee: Decimal


def _check_accounts(path: Path) -> tuple[int, int]:
    """Balances and positions equal what the stored orders and fills imply; (orders,
    fills) checked."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")  # one snapshot of everything, even while the service commits
    orders = db.execute(
        "SELECT order_id, owner, symbol, side, order_size, price, reserve, filled_qty, "
        "notional, status FROM orders"
    ).fetchall()
    fills: dict[str, list[StoredFill]] = defaultdict(list)
    for order_id, price, qty, fee in db.execute(
        "SELECT order_id, price, qty, fee FROM fills ORDER BY order_id, seq"
    ):
        fills[order_id].append(StoredFill(Decimal(price), Decimal(qty), Decimal(fee)))
    seen = {owner for (owner,) in db.execute("SELECT owner FROM accounts")}
    stored_balances = {
        (owner, asset): AssetBalance(Decimal(free), Decimal(locked))
        for owner, asset, free, locked in db.execute("SELECT * FROM balances")
    }
    stored_positions = {
        (owner, symbol): (Decimal(qty), Decimal(cash), Decimal(fees))
        for owner, symbol, qty, cash, fees in db.execute(
            "SELECT owner, symbol, qty, cash, fees FROM positions"
        )
    }
    db.execute("COMMIT")
    db.close()

    expected: dict[tuple[str, str], AssetBalance] = defaultdict(AssetBalance)
    opening = parse_paper_balances(OPENING) or {}
    for owner in seen:
        for asset, amount in opening.items():
            expected[owner, asset].free += amount
    positions: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for order_id, owner, symbol, side, size, price, reserve, filled, notional, status in orders:
        assets = assets_of(symbol)
        order = StoredOrder(
            Side(side), Decimal(size), None if price is None else Decimal(price),
            None if reserve is None else Decimal(reserve),
        )  # fmt: skip
        deltas = deltas_on_accept(order, assets)  # as accepted: nothing filled
        order.filled_qty, order.notional = Decimal(filled), Decimal(notional)
        assert sum((f.qty for f in fills[order_id]), ZERO) == order.filled_qty, order_id
        if fills[order_id]:
            deltas += deltas_on_fills(order, fills[order_id], assets)
        if status in FINAL:
            deltas += deltas_on_end(order, assets)
        for delta in deltas:
            row = expected[owner, delta.asset]
            row.free += delta.free
            row.locked += delta.locked
        for fill in fills[order_id]:
            position = positions[owner, symbol]
            buy = order.side is Side.BUY
            position[0] += fill.qty if buy else -fill.qty
            position[1] += -fill.price * fill.qty if buy else fill.price * fill.qty
            position[2] += fee_in_quote(order.side, fill.price, fill.fee)

    nonzero = {key: row for key, row in expected.items() if row.free or row.locked}
    assert {k: v for k, v in stored_balances.items() if v.free or v.locked} == nonzero
    for (_, asset), row in stored_balances.items():
        assert row.locked >= 0
        if asset == "BTC":  # only market buys may overspend, and they pay in USDT
            assert row.free >= 0
    assert stored_positions == {key: tuple(values) for key, values in positions.items()}
    return len(orders), sum(len(f) for f in fills.values())


async def _post(
    session: aiohttp.ClientSession, url: str, owner: str, path: str, body: dict[str, str]
) -> int | None:
    headers = {"Authorization": f"Bearer {TOKENS[owner]}"}
    try:
        async with session.post(f"{url}{path}", json=body, headers=headers) as response:
            return response.status
    except aiohttp.ClientError:
        return None


def _bodies(rng: random.Random, count: int) -> list[tuple[str, str, dict[str, str]]]:
    orders = []
    for _ in range(count):
        owner = rng.choice(sorted(TOKENS))
        side = rng.choice(["buy", "sell"])
        size = str(Decimal(rng.randint(1, 300)) / 10)
        if rng.random() < 0.2:
            orders.append((owner, "/order/market",
                           {"symbol": "BTCUSDT", "side": side, "order_size": size}))  # fmt: skip
        else:
            price = str(Decimal(rng.randint(9500, 10500)) / 100)
            orders.append((owner, "/order/limit", {
                "symbol": "BTCUSDT", "side": side, "order_size": size, "price": price,
            }))  # fmt: skip
    return orders


async def test_kill_9_leaves_balances_equal_to_what_the_stored_orders_and_fills_imply(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    database = tmp_path / "orders.db"
    env = {
        "ORDER_TIMEOUT_SECONDS": "1.5", "PAPER_BALANCES": OPENING, "FEE_RATE": "0.001",
        "API_TOKENS": ",".join(f"{owner}:{token}" for owner, token in TOKENS.items()),
        "RATE_LIMIT_PER_S": "0",
    }  # fmt: skip
    rng = random.Random(13)
    statuses: list[int | None] = []
    for round_number in range(4):
        service = ServiceProcess(database, emulator.base_url, **env)
        await service.start()
        _check_accounts(database)  # after the crash, and recovery's expiries
        async with aiohttp.ClientSession() as session:
            first = _bodies(rng, 30)
            statuses += await asyncio.gather(
                *(_post(session, service.url, *order) for order in first)
            )
            await emulator.wait_subscribed(stream("BTCUSDT"))

            async def blast() -> None:
                for _ in range(3000):
                    mid = Decimal(rng.randint(9500, 10500)) / 100
                    emulator.book_ticker(
                        "BTCUSDT", str(mid - 1), str(rng.randint(1, 50)), str(mid + 1),
                        str(rng.randint(1, 50)),
                    )  # fmt: skip
                    await asyncio.sleep(0)

            blaster = asyncio.create_task(blast())
            # More orders while quotes flow (market buys now have an ask to reserve at).
            during = _bodies(rng, 30)
            statuses += await asyncio.gather(
                *(_post(session, service.url, *order) for order in during)
            )
            await asyncio.sleep(0.2 + rng.random() * 0.3)
            await service.kill()
            blaster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await blaster
        _check_accounts(database)  # right after the kill: what the last commit left
        if round_number % 2:  # orders expire while it is down: recovery releases them
            await asyncio.sleep(1.6)
    service = ServiceProcess(database, emulator.base_url, **env)
    await service.start()
    try:
        _, fills = _check_accounts(database)
        assert fills, "the blast filled nothing"
        assert 202 in statuses and 422 in statuses  # accepted, and refused for balance
        _, account = await service.request(
            "GET", "/account", headers={"Authorization": "Bearer ta"}
        )
        assert {row["asset"] for row in account["balances"]} >= {"BTC", "USDT"}
    finally:
        await service.terminate()
