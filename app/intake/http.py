"""Order endpoints: POST /order/limit and /order/market, GET and DELETE /orders, GET and
DELETE /orders/{id}; and GET /fills, the owner's fills (JSON or CSV)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import ValidationError

from app import tracing
from app.core.account import BalanceRefused
from app.http.auth import AUTH
from app.http.errors import ApiError, json_bytes_response, json_response, validation_error
from app.http.limits import READ_TIMEOUT
from app.intake.fills_export import CSV_CONTENT_TYPE, NEXT_CURSOR_HEADER, fills_csv, wants_csv
from app.intake.service import (
    CancelsUnconfirmed,
    IdempotencyConflict,
    NotReady,
    OrderAlreadyFinal,
    OrderNotFound,
    OrderRefused,
    TooManyOpenOrders,
)
from app.keys import INTAKE, LIMITER, SETTINGS, STORE
from app.ports import StoreError
from app.schemas import (
    CancelAllQuery,
    ErrorDetail,
    FillsQuery,
    LimitOrderRequest,
    ListQuery,
    MarketOrderRequest,
    OrderFields,
    limit_order_request,
    order_json,
    owned_fill_json,
)

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()


def _decimal_constant(name: str) -> Decimal:
    # NaN / Infinity literals parse, so that validation can name the field they are in.
    return Decimal(name)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as JSON whatever the Content-Type says (the seed's `curl --data` works).

    Numbers become Decimal, never float, so no precision is lost on the way in.
    """
    raw = await read_body(request)
    body = _fast_json_object(raw)
    if body is None:
        try:
            body = json.loads(raw, parse_float=Decimal, parse_constant=_decimal_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"malformed JSON body: {exc}", code="malformed_json") from exc
        except RecursionError as exc:  # orjson stops at 1024 levels; the stdlib parser here
            raise ApiError(
                400, "malformed JSON body: nested too deeply", code="malformed_json"
            ) from exc
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object")
    return body


async def read_body(request: web.Request) -> bytes:
    """The whole body, if it arrives within the read timeout (408 if not).

    A body already received with its headers (the usual case) is read without a timer.
    A client that goes away mid-body is logged as one line, not a traceback.
    """
    if request.content.is_eof():
        return await request.read()
    timeout_s = request.app[READ_TIMEOUT]
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError as exc:
        log.info("http.body_timeout", method=request.method, path=request.path,
                 peer=request.remote, timeout_s=timeout_s)  # fmt: skip
        message = f"request body not received within {timeout_s:g} s"
        raise ApiError(408, message, close=True) from exc
    except (ConnectionError, RequestPayloadError) as exc:
        log.info("http.body_aborted", method=request.method, path=request.path,
                 peer=request.remote, error=str(exc))  # fmt: skip
        raise ApiError(
            400, f"request body incomplete: {exc}", code="body_incomplete", close=True
        ) from exc


def _fast_json_object(raw: bytes) -> dict[str, Any] | None:
    """orjson's parse when it is exact: an object with no JSON fraction in its values.

    orjson reads fractions as float; anything it refuses or would read as float goes to
    the exact (slower) parser, which also produces the error messages.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict or float in map(type, body.values()):
        return None
    return body


def _not_found(order_id: str) -> ApiError:
    return ApiError(404, f"order {order_id} not found")


def _unavailable(message: str) -> ApiError:
    return ApiError(503, message, headers={"Retry-After": "1"})


def _refused(exc: OrderRefused) -> ApiError:
    """422 `unknown_symbol` or `filter_failure`: the message names the filter and what it
    allows, the detail the request field at fault."""
    failure = exc.failure
    return ApiError(
        422,
        failure.message,
        code=failure.code,
        details=[ErrorDetail(field=failure.field, message=failure.message)],
    )


async def order_request_owner(request: web.Request) -> str:
    """Authenticate an order request (POST/DELETE) and count it against the rate limit."""
    owner = request.app[AUTH].owner(request)
    wait_s = await request.app[LIMITER].take_request(owner)
    if wait_s:
        rate = request.app[SETTINGS].rate_limit_per_s
        raise ApiError(
            429,
            f"rate limit: at most {rate:g} order requests per second",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        )
    return owner


@routes.post("/order/limit")
async def submit_order(request: web.Request) -> web.Response:
    if not tracing.ENABLED:
        return await _submit_order(request, limit_order_request)
    with tracing.span("POST /order/limit", kind="server") as span:  # the order's trace
        response = await _submit_order(request, limit_order_request)
        span.set_attribute("http.response.status_code", response.status)
        return response


@routes.post("/order/market")
async def submit_market_order(request: web.Request) -> web.Response:
    if not tracing.ENABLED:
        return await _submit_order(request, MarketOrderRequest.model_validate)
    with tracing.span("POST /order/market", kind="server") as span:  # the order's trace
        response = await _submit_order(request, MarketOrderRequest.model_validate)
        span.set_attribute("http.response.status_code", response.status)
        return response


async def _submit_order(
    request: web.Request,
    parse: Callable[[dict[str, Any]], OrderFields | LimitOrderRequest | MarketOrderRequest],
) -> web.Response:
    owner = await order_request_owner(request)
    body = await read_json_object(request)
    try:
        order_request = parse(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    try:
        order, created = await request.app[INTAKE].submit(owner, order_request)
    except IdempotencyConflict as exc:
        differs = f"differs from order {exc.existing.order_id}, placed with this client_order_id"
        raise ApiError(
            409,
            str(exc),
            code="idempotency_conflict",
            details=[ErrorDetail(field=field, message=differs) for field in exc.fields],
        ) from exc
    except BalanceRefused as exc:
        raise ApiError(422, str(exc), code="insufficient_balance") from exc
    except OrderRefused as exc:
        raise _refused(exc) from exc
    except TooManyOpenOrders as exc:
        # No Retry-After: room comes back when an order ends, not after a second.
        raise ApiError(429, str(exc), code="too_many_open_orders") from exc
    except NotReady as exc:
        raise _unavailable("the service is starting or stopping") from exc
    except StoreError as exc:
        raise _unavailable(f"the order was not stored: {exc}") from exc
    tracing.annotate(order)
    return json_bytes_response(
        orjson.dumps(order_json(order, with_fills=True)), status=202 if created else 200,
        headers={"Location": f"/orders/{order.order_id}"},
    )  # fmt: skip


@routes.get("/orders")
async def list_orders(request: web.Request) -> web.Response:
    owner = request.app[AUTH].owner(request)
    try:
        query = ListQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc) from exc
    page = await request.app[INTAKE].list_orders(
        owner, status=query.status, symbol=query.symbol, limit=query.limit,
        cursor=None if query.cursor is None else int(query.cursor),
    )  # fmt: skip
    return json_response({
        "orders": [order_json(order, with_fills=False) for order in page.orders],
        "next_cursor": page.next_cursor,
    })  # fmt: skip


@routes.delete("/orders")
async def cancel_all_orders(request: web.Request) -> web.Response:
    """Cancel every open order of the owner (of `symbol`, if given): one order request."""
    owner = await order_request_owner(request)
    try:
        query = CancelAllQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc) from exc
    try:
        cancelled = await request.app[INTAKE].cancel_all(owner, query.symbol)
    except CancelsUnconfirmed as exc:
        message = f"{exc}: the service is starting or stopping; repeat the request"
        raise _unavailable(message) from exc
    except NotReady as exc:
        raise _unavailable("the service is starting or stopping") from exc
    except StoreError as exc:
        raise _unavailable(f"the cancels were not all stored: {exc}") from exc
    return json_response({"cancelled": [order_json(order, with_fills=True) for order in cancelled]})


@routes.get("/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    owner = request.app[AUTH].owner(request)
    order_id = request.match_info["order_id"]
    try:
        order = await request.app[INTAKE].get(owner, order_id)
    except OrderNotFound as exc:
        raise _not_found(order_id) from exc
    return json_response(order_json(order, with_fills=True))


@routes.delete("/orders/{order_id}")
async def cancel_order(request: web.Request) -> web.Response:
    owner = await order_request_owner(request)
    order_id = request.match_info["order_id"]
    try:
        order = await request.app[INTAKE].cancel(owner, order_id)
    except OrderNotFound as exc:
        raise _not_found(order_id) from exc
    except OrderAlreadyFinal as exc:
        raise ApiError(
            409, f"order {order_id} is already {exc.order.status.value}", code="order_final"
        ) from exc
    except NotReady as exc:
        raise _unavailable("the service is starting or stopping") from exc
    return json_response(order_json(order, with_fills=True))


@routes.get("/fills")
async def list_fills(request: web.Request) -> web.Response:
    """The owner's fills, newest stored first: JSON, or CSV for `Accept: text/csv`.

    A read of the store only, so it answers on every api process. The origin middleware
    guards it like /order*.
    """
    owner = request.app[AUTH].owner(request)
    try:
        query = FillsQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc) from exc
    try:
        page = await request.app[STORE].list_fills(
            owner, symbol=query.symbol, limit=query.limit,
            cursor=None if query.cursor is None else int(query.cursor),
        )  # fmt: skip
    except StoreError as exc:
        raise _unavailable(f"the fills could not be read: {exc}") from exc
    if wants_csv(request.headers.get("Accept", "")):
        headers = {"Content-Type": CSV_CONTENT_TYPE, "Vary": "Accept"}
        if page.next_cursor is not None:
            headers[NEXT_CURSOR_HEADER] = page.next_cursor
        return web.Response(body=fills_csv(page.fills), headers=headers)
    return json_response(
        {"fills": [owned_fill_json(row) for row in page.fills], "next_cursor": page.next_cursor},
        headers={"Vary": "Accept"},
    )
