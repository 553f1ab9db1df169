"""Every 4xx/5xx answer has the contract's shape: {"error": {code, message, details}}."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError

from app.schemas import ErrorBody, ErrorDetail, ErrorResponse

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


JSON_CONTENT_TYPE = "application/json; charset=utf-8"  # as aiohttp's json_response says


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response encoded with orjson straight to bytes (aiohttp's json_response
    would take a str and encode it again)."""
    return json_bytes_response(orjson.dumps(data), status=status, headers=headers)


def json_bytes_response(
    body: bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A response whose JSON body is already encoded."""
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(body=body, status=status, headers=all_headers)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Iterable[ErrorDetail] = (),
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = list(details)
        self.headers = headers or {}
        self.close = close  # answer with `Connection: close` and close the connection

    def response(self) -> web.Response:
        body = ErrorResponse(
            error=ErrorBody(code=self.code, message=self.message, details=self.details)
        )
        response = json_response(
            body.model_dump(mode="json"), status=self.status, headers=self.headers
        )
        if self.close:
            response.force_close()
        return response


def validation_error(error: ValidationError, *, prefix: tuple[str, ...] = ()) -> ApiError:
    """A 422 that names each bad field."""
    details = []
    for item in error.errors():
        field = ".".join(str(part) for part in (*prefix, *item["loc"])) or "body"
        message = item["msg"].removeprefix("Value error, ")
        details.append(ErrorDetail(field=field, message=message))
    summary = "; ".join(f"{d.field}: {d.message}" for d in details)
    return ApiError(422, f"invalid request: {summary}", details=details)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            message = f"request body is too large: at most {request.client_max_size} bytes"
        else:
            message = exc.reason or _CODES.get(exc.status, "error")
        return ApiError(exc.status, message, headers=_passthrough(exc)).response()
    except Exception:
        log.exception("http.unhandled_error", path=request.path, method=request.method)
        return ApiError(500, "internal error").response()


def _passthrough(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
