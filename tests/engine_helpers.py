"""Compact builders for engine tests."""

from __future__ import annotations

from decimal import Decimal

from app.core.domain import BookUpdate, Side
from app.core.matching import RestingOrder

D = Decimal
FAR = 1e18  # an expiry that never comes


def order(order_id: str, side: str, limit: str, size: str, expires_at: float = FAR) -> RestingOrder:
    return RestingOrder(order_id, Side(side), D(limit), D(size), expires_at)


def ticker(uid: int, bid: str, bid_qty: str, ask: str, ask_qty: str, at: float = 0.0) -> BookUpdate:
    return BookUpdate("X", uid, ((D(bid), D(bid_qty)),), ((D(ask), D(ask_qty)),), at)


def depth(
    uid: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]], at: float = 0.0
) -> BookUpdate:
    return BookUpdate(
        "X", uid, tuple((D(p), D(q)) for p, q in bids), tuple((D(p), D(q)) for p, q in asks),
        at, full_depth=True,
    )  # fmt: skip


def fills(executions: list | None) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    assert executions is not None
    return [(e.order_id, str(e.price), str(e.qty)) for e in executions]
