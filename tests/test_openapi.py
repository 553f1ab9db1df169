"""/openapi.json, and a Schemathesis run against it: no 5xx, no response off-schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from app.emulator.server import BinanceEmulator
from tests.service_process import ServiceProcess


async def test_openapi_document(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {"/order/limit", "/orders", "/orders/{order_id}", "/readyz"}
    request = document["components"]["schemas"]["LimitOrderRequest"]
    assert set(request["required"]) == {"symbol", "order_size", "price"}
    assert request["additionalProperties"] is False
    order = document["components"]["schemas"]["OrderView"]
    assert order["properties"]["filled_qty"]["type"] == "string"  # decimals are strings


async def test_openapi_documents_market_orders_time_in_force_and_fees(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    document = await (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    market = document["paths"]["/order/market"]["post"]
    assert market["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MarketOrderRequest"
    }
    assert {"202", "200", "422", "429"} <= set(market["responses"])
    request = schemas["MarketOrderRequest"]
    assert set(request["properties"]) == {"symbol", "side", "order_size", "client_order_id"}
    assert set(request["required"]) == {"symbol", "side", "order_size"}
    assert request["additionalProperties"] is False
    assert "time_in_force" in schemas["LimitOrderRequest"]["properties"]
    assert schemas["TimeInForce"]["enum"] == ["GTT", "IOC", "FOK"]
    order = schemas["OrderView"]["properties"]
    assert {"type", "time_in_force", "fees", "fee_asset"} <= set(order)
    assert {"type": "null"} in order["price"]["anyOf"]  # null for a market order
    assert {"fee", "fee_asset"} <= set(schemas["FillView"]["properties"])


async def test_openapi_documents_the_account(client: TestClient) -> None:  # type: ignore[type-arg]
    document = await (await client.get("/openapi.json")).json()
    account = document["paths"]["/account"]["get"]
    assert account["security"] == [{"bearer": []}]
    assert account["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AccountResponse"
    }
    schemas = document["components"]["schemas"]
    assert set(schemas["BalanceView"]["properties"]) == {"asset", "free", "locked"}
    position = schemas["PositionView"]["properties"]
    assert set(position) == {
        "symbol", "qty", "avg_entry_price", "realized_pnl", "unrealized_pnl", "fees",
    }  # fmt: skip
    assert {"type": "null"} in position["unrealized_pnl"]["anyOf"]


async def test_openapi_documents_the_fills_export(client: TestClient) -> None:  # type: ignore[type-arg]
    document = await (await client.get("/openapi.json")).json()
    fills = document["paths"]["/fills"]["get"]
    assert fills["security"] == [{"bearer": []}]
    parameters = {p["name"]: p["schema"] for p in fills["parameters"]}
    assert set(parameters) == {"symbol", "limit", "cursor"}
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 500)
    ok = fills["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/FillList"}
    assert ok["content"]["text/csv"]["schema"] == {"type": "string"}
    assert "X-Next-Cursor" in ok["headers"]
    assert {"401", "403", "422"} <= set(fills["responses"])
    row = document["components"]["schemas"]["OwnedFillView"]
    assert list(row["properties"]) == [
        "order_id", "symbol", "side", "seq", "update_id", "price", "qty", "fee", "fee_asset", "ts",
    ]  # fmt: skip
    assert row["properties"]["fee"]["type"] == "string"  # decimals are strings


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    service = ServiceProcess(tmp_path / "fuzz.db", emulator.base_url, RATE_LIMIT_PER_S="0")
    await service.start()
    try:
        checks = ",".join([
            "not_a_server_error", "status_code_conformance", "content_type_conformance",
            "response_headers_conformance", "response_schema_conformance",
        ])  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "schemathesis.cli", "run", f"{service.url}/openapi.json",
            "--checks", checks, "--max-examples", "100", "--seed", "1",
            "--phases", "examples,coverage,fuzzing", "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 300)
        report = output.decode()
        assert process.returncode == 0, report[-4000:]
        assert "passed" in report.lower()
    finally:
        await service.terminate()
