"""Browser Origin checks for /order*, /orders* and /ws (CONTRACT.md, "Security").

A browser names the page that sent a request in `Origin`; any web page can make the user's
browser POST a form (`text/plain`) to localhost. Only the service's own origin (the same
host and port as the request's `Host`) and ALLOWED_ORIGINS may use these endpoints; a
request without `Origin` is not from a browser (curl, scripts) and is let through.
"""

from __future__ import annotations

from aiohttp import web

from app.http.errors import ApiError, Handler
from app.keys import SETTINGS

# Every endpoint of an owner's data: /order/limit, /order/market, /orders, /orders/{id},
# whatever the method, and the account and fills it adds up to.
GUARDED_PREFIXES = ("/order", "/account", "/fills")


def origin_allowed(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    origin = origin.rstrip("/")
    if origin in request.app[SETTINGS].allowed_origins:
        return True
    _, _, rest = origin.partition("://")
    return bool(rest) and rest.lower() == request.host.lower()


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for a foreign browser Origin on every endpoint of an owner's orders, account and
    fills (a header lookup otherwise)."""
    if (
        "Origin" in request.headers
        and request.path.startswith(GUARDED_PREFIXES)
        and not origin_allowed(request)
    ):
        raise ApiError(403, "this Origin may not use the order API")
    return await handler(request)
