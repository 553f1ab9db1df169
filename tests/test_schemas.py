"""The JSON the service writes directly is exactly the documented pydantic shape."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.core.account import AssetBalance, Balances, Position, Quote, account_view
from app.core.domain import OrderStatus, OrderType, Side, TimeInForce
from app.core.order import Order
from app.ports import OwnedFill
from app.schemas import (
    FILL_EXPORT_FIELDS,
    AccountResponse,
    FillList,
    FillsQuery,
    FillView,
    LimitOrderRequest,
    OrderFields,
    OrderList,
    OrderView,
    PositionView,
    _exact_fields,
    fill_json,
    limit_order_request,
    order_json,
    owned_fill_json,
)


def _order(**changes: object) -> Order:
    order = Order(
        order_id="0" * 32, owner="alice", client_order_id=None, symbol="BTCUSDT",
        side=Side.BUY, order_size=Decimal("2.50"), price=Decimal("64000.10"), timeout_s=30.0,
        status=OrderStatus.OPEN, created_at_us=1_764_000_000_000_001,
        updated_at_us=1_764_000_000_000_001, expires_at_us=1_764_000_030_000_001,
    )  # fmt: skip
    for name, value in changes.items():
        setattr(order, name, value)
    return order


def _filled_twice() -> Order:
    order = _order(client_order_id="my-key-1", fee_asset="BTC")
    atom = Decimal("0.000000000000000001")
    order.fills = [
        order.record_fill(
            11, Decimal("64000.1"), Decimal("1"), 1_764_000_000_500_000, Decimal("0.001")
        ),
        order.record_fill(12, Decimal("63999.95"), atom, 1_764_000_001_000_000, atom / 1000),
    ]
    return order


def _market_sell() -> Order:
    order = _order(
        side=Side.SELL, price=None, type=OrderType.MARKET, time_in_force=TimeInForce.IOC,
        fee_asset="USDT",
    )  # fmt: skip
    order.fills = [
        order.record_fill(13, Decimal("63999.5"), Decimal("2"), 1_764_000_000_600_000,
                          Decimal("0.127999")),
    ]  # fmt: skip
    order.finish(OrderStatus.EXPIRED, "expired: market order (IOC)", 1_764_000_000_600_000)
    return order


CASES = {
    "open, no fills": _order(),
    "partially filled, two fills": _filled_twice(),
    "expired with a reason": _order(status=OrderStatus.EXPIRED, reason="expired: not filled"),
    "a market sell, expired after a fill": _market_sell(),
    "a FOK limit order": _order(time_in_force=TimeInForce.FOK, fee_asset="BTC"),
    "at the bounds": _order(
        order_size=Decimal("99999999999999999999.999999999999999999"),
        price=Decimal("0.000000000000000001"),
    ),
}


@pytest.mark.parametrize("with_fills", [True, False])
@pytest.mark.parametrize("name", list(CASES))
def test_order_json_is_the_order_view(name: str, with_fills: bool) -> None:
    order = CASES[name]
    body = order_json(order, with_fills=with_fills)
    view = OrderView.model_validate(body)
    dumped = view.model_dump(mode="json", exclude=None if with_fills else {"fills"})
    assert dumped == body
    assert ("fills" in body) is with_fills
    assert list(body)[: len(OrderView.model_fields) - 1] == [
        name for name in OrderView.model_fields if name != "fills"
    ]


def test_the_values_are_the_contracts() -> None:
    body = order_json(_filled_twice(), with_fills=True)
    assert body["side"] == "buy" and body["status"] == "partially_filled"
    assert body["order_size"] == "2.5" and body["price"] == "64000.1"
    assert body["filled_qty"] == "1.000000000000000001"
    assert body["remaining_qty"] == "1.499999999999999999"
    assert body["created_at"] == "2025-11-24T16:00:00.000001Z"
    assert body["type"] == "limit" and body["time_in_force"] == "GTT"
    assert body["fees"] == "0.001000000000000000001" and body["fee_asset"] == "BTC"
    first, second = body["fills"]  # type: ignore[misc]
    assert first == {
        "seq": 1, "update_id": 11, "price": "64000.1", "qty": "1", "fee": "0.001",
        "fee_asset": "BTC", "ts": "2025-11-24T16:00:00.500000Z",
    }  # fmt: skip
    assert second == {
        "seq": 2, "update_id": 12, "price": "63999.95", "qty": "0.000000000000000001",
        "fee": "0.000000000000000000001", "fee_asset": "BTC",
        "ts": "2025-11-24T16:00:01.000000Z",
    }  # fmt: skip
    average = Decimal(str(body["avg_price"]))
    assert Decimal("63999.95") < average < Decimal("64000.1")


def test_a_market_order_has_no_price() -> None:
    body = order_json(_market_sell(), with_fills=True)
    assert body["price"] is None and body["type"] == "market"
    assert body["time_in_force"] == "IOC" and body["status"] == "expired"
    assert body["fees"] == "0.127999" and body["fee_asset"] == "USDT"
    assert body["avg_price"] == "63999.5"


def test_fill_json_is_the_fill_view() -> None:
    for fill in _filled_twice().fills:
        body = fill_json(fill)
        assert FillView.model_validate(body).model_dump(mode="json") == body


def test_a_list_page_is_an_order_list() -> None:
    page = {"orders": [order_json(o, with_fills=False) for o in CASES.values()], "next_cursor": "7"}
    listed = OrderList.model_validate(page)
    assert listed.model_dump(mode="json", exclude={"orders": {"__all__": {"fills"}}}) == page


# -- the order request's one validation pass -------------------------------------------------

_DECIMAL_VALUES = st.one_of(
    st.from_regex(r"\A[0-9]{1,22}(\.[0-9]{1,21})?\Z"),
    st.sampled_from(["0", "0.0", "00", "1e3", ".5", "5.", " 5", "+5", "NaN", "\u0663", ""]),
    st.sampled_from(
        [  # the bounds: 18 digits after the point (trailing zeros aside), < 10^20
            "0.0000000000000000001",
            "1.0000000000000000000",
            "0.000000000000000001",
            "100000000000000000000",
            "099999999999999999999",
            "99999999999999999999.999999999999999999",
        ]
    ),
    st.integers(min_value=-(10**21), max_value=10**21),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
_BODY_VALUES = {
    "symbol": st.one_of(
        st.from_regex(r"\A[A-Za-z0-9]{1,22}\Z"),
        st.sampled_from(["btc\u0131", "\u00df\u00df", " BTCUSDT", "BTC-USDT"]),
        st.integers(),
    ),
    "order_size": _DECIMAL_VALUES,
    "price": _DECIMAL_VALUES,
    "side": st.one_of(
        st.sampled_from(["buy", "sell", "BUY", "Sell", " sell", "sell ", "hold", ""]), st.integers()
    ),
    "timeout_s": st.one_of(
        st.integers(min_value=-5, max_value=90_000),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.floats(),
        st.sampled_from(["600", "soon", 10**400]),
    ),
    "client_order_id": st.one_of(
        st.text(max_size=70), st.sampled_from(["", " key", "key\t", "x" * 64, "x" * 65])
    ),
    "time_in_force": st.one_of(
        st.sampled_from(["GTT", "IOC", "FOK", "ioc", "Fok", " IOC", "GTC", "", "gtt "]),
        st.integers(),
        st.none(),
    ),
    "unknown_field": st.integers(),
}
_VALID_DECIMALS = st.one_of(
    st.from_regex(r"\A[1-9][0-9]{0,19}(\.[0-9]{1,18})?\Z"), st.integers(1, 10**20 - 1)
)
_VALID_BODIES = st.fixed_dictionaries(
    {
        "symbol": st.from_regex(r"\A[A-Za-z0-9]{2,20}\Z"),
        "order_size": _VALID_DECIMALS,
        "price": _VALID_DECIMALS,
    },
    optional={
        "side": st.sampled_from(["buy", "sell", "BUY", "Sell"]),
        "timeout_s": st.one_of(st.integers(1, 86400), st.decimals("0.001", "86400", places=3)),
        "client_order_id": st.text(
            st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64
        ),
        "time_in_force": st.sampled_from(["GTT", "IOC", "FOK", "ioc", "fok", "gtt"]),
    },
)
# Valid bodies with some fields (maybe none) replaced by anything, valid or not.
_BODIES = st.builds(
    lambda valid, changes: {**valid, **changes},
    _VALID_BODIES,
    st.fixed_dictionaries({}, optional=_BODY_VALUES),  # type: ignore[arg-type]
)


def _as_model_holds(fields: OrderFields) -> dict[str, object]:
    return {name: (type(value), repr(value)) for name, value in fields._asdict().items()}


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_BODIES)
def test_the_direct_check_accepts_only_what_the_model_accepts_and_holds_the_same(
    body: dict[str, object],
) -> None:
    fields = _exact_fields(body)
    try:
        model = LimitOrderRequest.model_validate(body)
    except ValidationError:
        assert fields is None, body  # refused: the model's own 422 names the field
        return
    if fields is not None:
        as_model = OrderFields(*(getattr(model, name) for name in OrderFields._fields))
        assert _as_model_holds(fields) == _as_model_holds(as_model), body


_BOUNDS = ["0.0000000000000000001", "1.0000000000000000000", "0.000000000000000001", "0.0",
           "100000000000000000000", "099999999999999999999", "0", "000",
           "99999999999999999999.999999999999999999", 10**20, 10**20 - 1, 0, -1]  # fmt: skip


@pytest.mark.parametrize("field", ["order_size", "price"])
@pytest.mark.parametrize("value", _BOUNDS)
def test_each_decimal_bound_is_judged_as_the_model_judges_it(field: str, value: object) -> None:
    test_the_direct_check_accepts_only_what_the_model_accepts_and_holds_the_same.hypothesis.inner_test(  # type: ignore[attr-defined]
        {"symbol": "LTCBTC", "order_size": "1", "price": "1", field: value}
    )


@pytest.mark.parametrize(
    "body",
    [
        {"symbol": "BENCHUSDT", "side": "sell", "order_size": "1", "price": "1000",
         "timeout_s": 600},
        {"symbol": "ltcbtc", "order_size": 3, "price": Decimal("0.50")},
        {"symbol": "LTCBTC", "side": "BUY", "order_size": "0.000000000000000001",
         "price": "99999999999999999999.999999999999999999", "timeout_s": Decimal("0.5"),
         "client_order_id": "k" * 64},
    ],
)  # fmt: skip
def test_the_usual_body_is_validated_directly_without_the_model(body: dict[str, object]) -> None:
    fields = limit_order_request(body)
    assert isinstance(fields, OrderFields)
    model = LimitOrderRequest.model_validate(body)
    assert fields == OrderFields(*(getattr(model, name) for name in OrderFields._fields))


def test_a_body_the_model_must_judge_is_left_to_it() -> None:
    with pytest.raises(ValidationError) as refused:
        limit_order_request({"symbol": "LTCBTC", "order_size": "0", "price": "1", "x": 1})
    assert {error["loc"][0] for error in refused.value.errors()} == {"order_size", "x"}
    # Valid but not plain (a padded key, a timeout as text): the model decides, and accepts.
    accepted = limit_order_request({"symbol": "LTCBTC", "order_size": "1", "price": "1",
                                    "client_order_id": " key ", "timeout_s": "60"})  # fmt: skip
    assert isinstance(accepted, LimitOrderRequest)
    assert (accepted.client_order_id, accepted.timeout_s) == ("key", 60.0)


# -- the paper account -------------------------------------------------------------------


def _account_views() -> list[dict[str, object]]:
    balances = Balances(
        {"USDT": AssetBalance(Decimal("8725.32")),
         "BTC": AssetBalance(Decimal("-0.5"), Decimal(1))},
        enforced=False,
    )  # fmt: skip
    long, flat, unmarked = Position("BTCUSDT"), Position("ETHUSDT"), Position("LTCBTC")
    long.apply_fill(Side.BUY, Decimal(1), Decimal(1), Decimal("0.001"))
    long.apply_fill(Side.BUY, Decimal(2), Decimal(2), Decimal("0.002"))  # average 5/3
    flat.apply_fill(Side.BUY, Decimal(10), Decimal(1), Decimal(0))
    flat.apply_fill(Side.SELL, Decimal(12), Decimal(1), Decimal(0))
    unmarked.apply_fill(Side.SELL, Decimal("0.05"), Decimal(3), Decimal(0))
    quotes = {"BTCUSDT": Quote(Decimal(2), None), "ETHUSDT": Quote(None, None)}
    return [
        account_view(balances, [long, flat, unmarked], quotes),
        account_view(Balances(enforced=True), [], {}),
    ]


@pytest.mark.parametrize("view", _account_views())
def test_the_account_view_is_the_account_response(view: dict[str, object]) -> None:
    model = AccountResponse.model_validate(view)
    assert model.model_dump(mode="json") == view
    assert list(view) == list(AccountResponse.model_fields)
    for row in model.positions:
        assert list(row.model_dump()) == list(PositionView.model_fields)


def test_the_account_view_shows_nulls_where_the_contract_does() -> None:
    view = _account_views()[0]
    positions = {row["symbol"]: row for row in view["positions"]}  # type: ignore[index, union-attr]
    assert positions["ETHUSDT"]["avg_entry_price"] is None  # flat
    assert positions["ETHUSDT"]["unrealized_pnl"] == "0"
    assert positions["LTCBTC"]["unrealized_pnl"] is None  # short, no ask known
    assert positions["BTCUSDT"]["avg_entry_price"] == "1.666666666666666667"


# -- GET /fills -----------------------------------------------------------------------------


def _owned_fills() -> list[OwnedFill]:
    return [
        OwnedFill(order.order_id, order.symbol, order.side, fill)
        for order in (_filled_twice(), _market_sell())
        for fill in order.fills
    ]


def test_a_fills_page_is_a_fill_list_with_the_fields_in_the_exported_order() -> None:
    rows = [owned_fill_json(row) for row in _owned_fills()]
    page = {"fills": rows, "next_cursor": "12"}
    assert FillList.model_validate(page).model_dump(mode="json") == page
    assert FILL_EXPORT_FIELDS == (
        "order_id", "symbol", "side", "seq", "update_id", "price", "qty", "fee", "fee_asset", "ts",
    )  # fmt: skip
    assert all(tuple(row) == FILL_EXPORT_FIELDS for row in rows)
    first, second = rows[0], rows[1]
    assert first == {
        "order_id": "0" * 32, "symbol": "BTCUSDT", "side": "buy", "seq": 1, "update_id": 11,
        "price": "64000.1", "qty": "1", "fee": "0.001", "fee_asset": "BTC",
        "ts": "2025-11-24T16:00:00.500000Z",
    }  # fmt: skip
    assert (second["qty"], second["fee"]) == ("0.000000000000000001", "0.000000000000000000001")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"),
        ({"cursor": "x1"}, "cursor"), ({"cursor": "-1"}, "cursor"),
        ({"cursor": str(2**63)}, "cursor"), ({"symbol": "btc-usdt"}, "symbol"),
        ({"symbol": "B"}, "symbol"), ({"status": "open"}, "status"),
    ],
)  # fmt: skip
def test_a_bad_fills_query_names_its_field(query: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FillsQuery.model_validate(query)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_a_fills_query_has_the_defaults_and_upper_cases_the_symbol() -> None:
    assert FillsQuery.model_validate({}).model_dump() == {
        "symbol": None, "limit": 50, "cursor": None,
    }  # fmt: skip
    query = FillsQuery.model_validate({"symbol": "btcUSDT", "limit": "500", "cursor": "17"})
    assert (query.symbol, query.limit, query.cursor) == ("BTCUSDT", 500, "17")


def test_a_symbols_json_is_the_symbol_view() -> None:
    from app.core.filters import SymbolInfo
    from app.emulator.exchange_info import default_exchange_symbols
    from app.http.symbols import symbol_json
    from app.schemas import SymbolView

    for view in (
        symbol_json(
            "BTCUSDT",
            SymbolInfo.from_exchange_info(default_exchange_symbols()["BTCUSDT"]),
            "exchange_info",
        ),
        symbol_json("AAAUSDT", None, "unavailable"),
    ):
        model = SymbolView.model_validate(view)
        assert model.model_dump(mode="json") == view
        assert list(view) == list(SymbolView.model_fields)


def test_a_book_historys_points_are_the_history_view() -> None:
    from app.core.domain import BookUpdate
    from app.http.book_history import BookHistory
    from app.schemas import BookHistoryView

    history = BookHistory()
    history.on_update(
        BookUpdate("BTCUSDT", 1, ((Decimal("1.5"), Decimal(2)),), (), received_at=1000.0)
    )
    points = [p.to_json() for p in history.points("BTCUSDT", now=1001.0)]
    body = {"symbol": "BTCUSDT", "seconds": history.seconds, "points": points}
    assert BookHistoryView.model_validate(body).model_dump(mode="json") == body
    assert points == [{"ts": points[0]["ts"], "bid": "1.5", "ask": None}]
