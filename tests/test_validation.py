"""Every bad request gets a clear error naming what is wrong, and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

VALID = {"symbol": "LTCBTC", "order_size": "1", "price": "0.5"}


async def _stored_count(client: TestClient) -> int:  # type: ignore[type-arg]
    return len((await (await client.get("/orders")).json())["orders"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"symbol": None}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "L"}, "symbol"),
        ({"symbol": "LTC-BTC"}, "symbol"),
        ({"symbol": "A" * 21}, "symbol"),
        ({"symbol": 42}, "symbol"),
        ({"order_size": "0"}, "order_size"),
        ({"order_size": "-1"}, "order_size"),
        ({"order_size": "NaN"}, "order_size"),
        ({"order_size": "Infinity"}, "order_size"),
        ({"order_size": "1e400"}, "order_size"),
        ({"order_size": "1e20"}, "order_size"),
        ({"order_size": True}, "order_size"),
        ({"order_size": ""}, "order_size"),
        ({"order_size": "abc"}, "order_size"),
        ({"order_size": "0.0000000000000000001"}, "order_size"),
        ({"order_size": [1]}, "order_size"),
        ({"price": "0"}, "price"),
        ({"price": False}, "price"),
        ({"price": "-0.1"}, "price"),
        ({"price": None}, "price"),
        ({"side": "hold"}, "side"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": 86401}, "timeout_s"),
        ({"timeout_s": "soon"}, "timeout_s"),
        ({"timeout_s": True}, "timeout_s"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"client_order_id": "x" * 65}, "client_order_id"),
        ({"unknown_field": 1}, "unknown_field"),
        # ASCII only: Unicode digits, superscripts and case mappings are refused.
        ({"order_size": "\u0663"}, "order_size"),  # ARABIC-INDIC DIGIT THREE
        ({"price": "\uff11"}, "price"),  # FULLWIDTH DIGIT ONE
        ({"price": "1.\u0665"}, "price"),
        ({"order_size": "\u00b2"}, "order_size"),  # SUPERSCRIPT TWO
        ({"symbol": "\u00df\u00df"}, "symbol"),  # "ßß" upper-cases to "SSSS"
        ({"symbol": "\uff22\uff34\uff23"}, "symbol"),  # FULLWIDTH "BTC"
        ({"symbol": "btc\u0131"}, "symbol"),  # dotless i upper-cases to "I"
        # One documented syntax for decimal strings: no sign, exponent or bare point.
        ({"order_size": "+5"}, "order_size"),
        ({"price": "1e3"}, "price"),
        ({"price": ".5"}, "price"),
        ({"price": "5."}, "price"),
        ({"price": " 5"}, "price"),
    ],
)
async def test_invalid_field_is_422_naming_it(
    client: TestClient,
    change: dict[str, Any],
    field: str,  # type: ignore[type-arg]
) -> None:
    body = {**VALID, **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post("/order/limit", json=body)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]], error
    assert field in error["message"]
    assert await _stored_count(client) == 0


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"symbol": "LTCBTC",', b"\xff\xfe", b'{"a": NaN'],
)
async def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:  # type: ignore[type-arg]
    response = await client.post("/order/limit", data=raw)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "malformed_json" and error["message"]
    assert await _stored_count(client) == 0


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"42", b"null"])
async def test_json_that_is_not_an_object_is_422(client: TestClient, raw: bytes) -> None:  # type: ignore[type-arg]
    response = await client.post("/order/limit", data=raw)
    assert response.status == 422


async def test_json_nan_literal_names_the_field(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.post(
        "/order/limit", data=b'{"symbol": "LTCBTC", "order_size": NaN, "price": Infinity}'
    )
    assert response.status == 422
    fields = {d["field"] for d in (await response.json())["error"]["details"]}
    assert fields == {"order_size", "price"}


async def test_numbers_keep_every_digit(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.post(
        "/order/limit",
        data=b'{"symbol": "ltcbtc", "order_size": 12345678901234567890.123456789012345678,'
        b' "price": 0.000000000000000001, "side": "BUY"}',
    )
    assert response.status == 202, await response.text()
    order = await response.json()
    assert order["order_size"] == "12345678901234567890.123456789012345678"
    assert order["price"] == "0.000000000000000001"
    assert order["symbol"] == "LTCBTC" and order["side"] == "buy"


@pytest.mark.parametrize(
    ("raw_size", "stored"),
    [
        (b"99999999999999999999", "99999999999999999999"),  # above 2^64: past orjson's ints
        (b"18446744073709551615", "18446744073709551615"),  # 2^64 - 1: orjson's own
        (b"2.50", "2.5"),  # a fraction: never through float
        (b"1E+2", "100"),  # an exponent makes it a JSON fraction too
    ],
)
async def test_json_numbers_are_exact_whichever_parser_reads_them(
    client: TestClient,  # type: ignore[type-arg]
    raw_size: bytes,
    stored: str,
) -> None:
    body = b'{"symbol": "LTCBTC", "order_size": ' + raw_size + b', "price": "1"}'
    response = await client.post("/order/limit", data=body)
    assert response.status == 202, await response.text()
    assert (await response.json())["order_size"] == stored


async def test_body_over_64_kib_is_413(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.post("/order/limit", data=b"{" + b" " * (65 * 1024) + b"}")
    assert response.status == 413
    error = (await response.json())["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"] == "request body is too large: at most 65536 bytes"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 30000,
        b'{"a":' * 10000,
        b'{"symbol": ' + b"[" * 2000 + b"]" * 2000 + b"}",  # deep, but complete and valid
        b'{"symbol": "LTCBTC", "price": ' + b"[" * 5000,
    ],
)
async def test_deeply_nested_json_is_400_not_500(client: TestClient, raw: bytes) -> None:  # type: ignore[type-arg]
    assert len(raw) < 64 * 1024
    response = await client.post("/order/limit", data=raw)
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "malformed_json"
    assert "nested too deeply" in error["message"]
    assert await _stored_count(client) == 0


async def test_a_changed_repeat_names_each_differing_field(client: TestClient) -> None:  # type: ignore[type-arg]
    first = {**VALID, "client_order_id": "k-1"}
    assert (await client.post("/order/limit", json=first)).status == 202
    changed = {**first, "price": "0.6", "side": "buy"}
    response = await client.post("/order/limit", json=changed)
    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "idempotency_conflict"
    assert "price" in error["message"] and "side" in error["message"]
    assert sorted(d["field"] for d in error["details"]) == ["price", "side"]
    assert all(d["message"] for d in error["details"])


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"status": "done"}, "status"),
     ({"cursor": "zz"}, "cursor"), ({"symbol": "a-b"}, "symbol"),
     ({"cursor": "99999999999999999999999"}, "cursor"),  # past SQLite's 64-bit integers
     ({"cursor": "9223372036854775808"}, "cursor"),  # 2^63
     ({"cursor": "\u00b2"}, "cursor"),  # "²".isdigit() is True
     ({"cursor": "\u0663"}, "cursor"), ({"cursor": "-1"}, "cursor"), ({"cursor": ""}, "cursor"),
     ({"symbol": "\u00df\u00df"}, "symbol")],
)  # fmt: skip
async def test_bad_list_query_is_422(
    client: TestClient,
    query: dict[str, str],
    field: str,  # type: ignore[type-arg]
) -> None:
    response = await client.get("/orders", params=query)
    assert response.status == 422, await response.text()
    assert field in [d["field"] for d in (await response.json())["error"]["details"]]


async def test_the_largest_cursor_is_accepted(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/orders", params={"cursor": str(2**63 - 1)})
    assert response.status == 200
    assert await response.json() == {"orders": [], "next_cursor": None}


async def test_unknown_order_and_route_are_404_json(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/orders/nope")).status == 404
    response = await client.get("/no/such/route")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    wrong_method = await client.put("/order/limit")
    assert wrong_method.status == 405
