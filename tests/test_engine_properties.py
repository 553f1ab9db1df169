"""Property tests: the engine against the naive reference model, plus invariants."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain import BookUpdate, Side
from app.engine.matching import RestingOrder, SymbolMatcher
from tests.reference_model import ReferenceModel

PRICES = [Decimal(p) / 2 for p in range(18, 24)]  # 9.0 .. 11.5: collisions are common
QTY = st.decimals(min_value="0.001", max_value="5", places=3)


@st.composite
def levels(draw: st.DrawFn, *, best_is_highest: bool, many: bool) -> tuple:  # type: ignore[type-arg]
    count = draw(st.integers(1, 4)) if many else 1
    prices = sorted(draw(st.sets(st.sampled_from(PRICES), min_size=count, max_size=count)),
                    reverse=best_is_highest)  # fmt: skip
    return tuple((price, draw(QTY)) for price in prices)


@st.composite
def events(draw: st.DrawFn, depth_mode: bool) -> list[tuple]:  # type: ignore[type-arg]
    out: list[tuple] = []  # type: ignore[type-arg]
    update_id = 0
    next_order = 0
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["add", "update", "update", "update", "remove", "forget"]))
        if kind == "add":
            next_order += 1
            out.append(("add", f"o{next_order}", draw(st.sampled_from(["buy", "sell"])),
                        draw(st.sampled_from(PRICES)), draw(QTY),
                        draw(st.sampled_from([5.0, 1e18]))))  # fmt: skip
        elif kind == "update":
            update_id += draw(st.sampled_from([-1, 0, 1, 1, 2]))  # some stale ones
            out.append((
                "update",
                BookUpdate(
                    "X", update_id,
                    draw(levels(best_is_highest=True, many=depth_mode)),
                    draw(levels(best_is_highest=False, many=depth_mode)),
                    received_at=float(draw(st.sampled_from([0, 10]))), full_depth=depth_mode,
                ),
            ))  # fmt: skip
        elif kind == "remove" and next_order:
            out.append(("remove", f"o{draw(st.integers(1, next_order))}"))
        elif kind == "forget":
            out.append(("forget",))
    return out


def run_both(script: list[tuple]) -> None:  # type: ignore[type-arg]
    engine, model = SymbolMatcher("X"), ReferenceModel()
    sizes: dict[str, Decimal] = {}
    limits: dict[str, tuple[str, Decimal]] = {}
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for step in script:
        if step[0] == "add":
            _, order_id, side, limit, size, expires_at = step
            sizes[order_id], limits[order_id] = size, (side, limit)
            got = engine.add(RestingOrder(order_id, Side(side), limit, size, expires_at), now=0.0)
            want = model.add(order_id, side, limit, size, expires_at, now=0.0)
            taken_before: dict[Decimal, Decimal] = {}
        elif step[0] == "update":
            update = step[1]
            taken_before = dict(engine.ledger("asks")) | {
                (p, "b"): q
                for p, q in engine.ledger("bids")  # type: ignore[misc]
            }
            got = engine.apply(update)
            want = model.apply(update)
            if got is not None:
                # Never more taken from a shown level than it offered this update.
                per_level: dict[tuple[Decimal, str], Decimal] = defaultdict(Decimal)
                for e in got:
                    per_level[(e.price, "a" if limits[e.order_id][0] == "buy" else "b")] += e.qty
                for (price, book), qty in per_level.items():
                    levels = update.asks if book == "a" else update.bids
                    shown_qty = dict(levels)[price]
                    key = price if book == "a" else (price, "b")
                    assert qty <= shown_qty - min(taken_before.get(key, Decimal(0)), shown_qty)
        elif step[0] == "remove":
            engine.remove(step[1])
            model.remove(step[1])
            continue
        else:
            engine.forget_quote()
            model.forget_quote()
            continue
        got_tuples = (
            None if got is None else [(e.order_id, e.update_id, e.price, e.qty) for e in got]
        )
        assert got_tuples == want
        for order_id, _, price, qty in got_tuples or []:
            side, limit = limits[order_id]
            assert (price <= limit) if side == "buy" else (price >= limit)  # never worse
            assert qty > 0
            filled[order_id] += qty
            assert filled[order_id] <= sizes[order_id]  # never over-filled
    assert len(engine) == len(model.orders)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(depth_mode=False))
def test_book_ticker_mode_matches_the_reference(script: list[tuple]) -> None:  # type: ignore[type-arg]
    run_both(script)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(depth_mode=True))
def test_depth_mode_matches_the_reference(script: list[tuple]) -> None:  # type: ignore[type-arg]
    run_both(script)
