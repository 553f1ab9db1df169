"""GET /openapi.json: OpenAPI 3.1 of the HTTP surface, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from app.core import rules
from app.schemas import (
    AccountResponse,
    BookHistoryView,
    CancelledOrders,
    ErrorResponse,
    FillList,
    LimitOrderRequest,
    MarketOrderRequest,
    OrderList,
    OrderView,
    SymbolView,
)

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON", 401: "Missing or invalid bearer token",
        403: "A browser Origin that is neither this service's nor listed", 404: "Unknown order",
        408: "The body was not received in time", 409: "Conflict", 413: "Body over 64 KiB",
        422: "Invalid request, naming each field; or refused by the exchange's rules: "
             "unknown_symbol (not listed, or not trading) or filter_failure (the message names "
             "the filter and what it allows, the detail the field); or insufficient_balance "
             "(PAPER_BALANCES)",
        429: "Rate limit (see Retry-After), or the open-order cap (too_many_open_orders)",
        503: "Starting, stopping, or the database refused the write",
    }  # fmt: skip
    return {str(s): _json(_ref("ErrorResponse"), reasons[s]) for s in statuses}


def build_openapi() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(m, "validation") for m in (LimitOrderRequest, MarketOrderRequest)]
        + [
            (m, "serialization")
            for m in (
                OrderView,
                OrderList,
                FillList,
                CancelledOrders,
                AccountResponse,
                SymbolView,
                BookHistoryView,
                ErrorResponse,
            )
        ],
        ref_template=_REF,
    )
    order = _ref("OrderView")
    order_id = {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
    symbol = {
        "name": "symbol",
        "in": "query",
        "schema": {"type": "string", "pattern": rules.SYMBOL_PATTERN},
    }
    path_symbol = {
        "name": "symbol", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": rules.SYMBOL_PATTERN},
    }  # fmt: skip
    location = {"Location": {"schema": {"type": "string"}, "description": "/orders/{order_id}"}}
    security: list[dict[str, list[str]]] = [{"bearer": []}]

    def placing(summary: str, body: str) -> dict[str, Any]:
        return {"post": {
            "summary": summary, "security": security,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref(body)}}},
            "responses": {
                "202": {**_json(order, "Accepted: the order, open"), "headers": location},
                "200": {**_json(order, "The existing order for a repeated client_order_id"),
                        "headers": location},
                **_errors(400, 401, 403, 408, 409, 413, 422, 429, 503),
            },
        }}  # fmt: skip

    return {
        "openapi": "3.1.0",
        "info": {"title": "Trade executor", "version": "1.0.0",
                 "description": "Simulated limit and market orders filled against Binance "
                                "market data."},
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/order/limit": placing(
                "Place a limit order (time_in_force GTT, IOC or FOK)", "LimitOrderRequest"
            ),
            "/order/market": placing(
                "Place a market order: an IOC with no price limit", "MarketOrderRequest"
            ),
            "/orders": {"get": {
                "summary": "List orders, newest first", "security": security,
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": [
                        "open", "partially_filled", "filled", "expired", "cancelled", "rejected"]}},
                    symbol,
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "cursor", "in": "query",
                     "schema": {"type": "string", "pattern": rules.CURSOR_PATTERN}},
                ],
                "responses": {"200": _json(_ref("OrderList"), "A page of orders"),
                              **_errors(401, 403, 422)},
            }, "delete": {
                "summary": "Cancel every open order (of one symbol, if given)",
                "security": security, "parameters": [symbol],
                "responses": {
                    "200": _json(_ref("CancelledOrders"),
                                 "The orders cancelled, newest first, with the fills they "
                                 "kept; an order that a fill or expiry ended first is left out"),
                    **_errors(401, 403, 422, 429, 503),
                },
            }},
            "/orders/{order_id}": {
                "get": {"summary": "One order with its fills", "security": security,
                        "parameters": [order_id],
                        "responses": {"200": _json(order, "The order"),
                                      **_errors(401, 403, 404)}},
                "delete": {"summary": "Cancel an order", "security": security,
                           "parameters": [order_id],
                           "responses": {"200": _json(order, "Cancelled, fills kept"),
                                         **_errors(401, 403, 404, 409, 429, 503)}},
            },
            "/account": {"get": {
                "summary": "The owner's paper balances and positions", "security": security,
                "responses": {"200": _json(_ref("AccountResponse"), "Balances and positions"),
                              **_errors(401, 403, 503)},
            }},
            "/fills": {"get": {
                "summary": "The owner's fills, newest first: JSON, or CSV with Accept: text/csv",
                "security": security,
                "parameters": [
                    {"name": "symbol", "in": "query",
                     "schema": {"type": "string", "pattern": rules.SYMBOL_PATTERN}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "cursor", "in": "query",
                     "schema": {"type": "string", "pattern": rules.CURSOR_PATTERN}},
                ],
                "responses": {
                    "200": {
                        "description": "A page of fills. As CSV: a header line of the field "
                                       "names, one line per fill (CRLF), and the next page's "
                                       "cursor in X-Next-Cursor (absent on the last page)",
                        "headers": {"X-Next-Cursor": {
                            "schema": {"type": "string", "pattern": rules.CURSOR_PATTERN},
                            "description": "CSV only: the cursor of the next page"}},
                        "content": {
                            "application/json": {"schema": _ref("FillList")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(401, 403, 422, 503),
                },
            }},
            "/symbols/{symbol}": {"get": {
                "summary": "A symbol's tick, step and assets (from Binance's exchange info)",
                "parameters": [path_symbol],
                "responses": {"200": _json(_ref("SymbolView"), "The symbol's display rules"),
                              "404": _json(_ref("ErrorResponse"),
                                           "unknown_symbol: Binance does not list it"),
                              "422": _json(_ref("ErrorResponse"), "Not a symbol")},
            }},
            "/book/{symbol}/history": {"get": {
                "summary": "Recent top of book: the first quote of each second, bounded",
                "parameters": [path_symbol],
                "responses": {"200": _json(_ref("BookHistoryView"), "Oldest first"),
                              "422": _json(_ref("ErrorResponse"), "Not a symbol")},
            }},
            "/healthz": {"get": {"summary": "Liveness", "responses": {
                "200": _json({"type": "object"}, "The process serves")}}},
            "/readyz": {"get": {"summary": "Readiness and upstream feed state", "responses": {
                "200": _json({"type": "object"}, "Ready"),
                "503": _json({"type": "object"}, "Not ready yet")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
    }  # fmt: skip


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


def setup_openapi(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
