"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from app.keys import BOOKS, EXECUTOR, FEED, FILTERS, INTAKE, SETTINGS, STORE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 once the store answers and what this process runs has started (and recovered).

    Where intake runs, the body also says whether Binance's exchange info can be read
    (`exchange_info`: ok, unavailable or off) and how many orders were let through
    unchecked (`unchecked_orders`); neither changes readiness."""
    app = request.app
    database = "ok"
    try:
        store = app.get(STORE)
        if store is None:
            database = "not open"
        else:
            await store.ping()
    except Exception as exc:
        database = f"error: {exc}"
    bus = "in process"
    books = app.get(BOOKS)  # with a Redis bus, every process holds this client
    if books is not None:
        try:
            await books.ping()  # type: ignore[attr-defined]
            bus = "ok"
        except Exception as exc:
            bus = f"error: {exc}"
    intake, executor, feed = app.get(INTAKE), app.get(EXECUTOR), app.get(FEED)
    parts_ready = [part.ready for part in (intake, executor) if part is not None]
    ready = database == "ok" and bus in ("ok", "in process") and bool(parts_ready)
    ready = ready and all(parts_ready)
    body = {
        "ready": ready,
        "role": app[SETTINGS].role,
        "database": database,
        "bus": bus,
        "service": executor.state() if executor is not None else {"ready": ready},
        "feed": feed.state() if feed is not None else None,
    }
    filters = app.get(FILTERS)
    if filters is not None:
        body.update(filters.state())
    return web.json_response(body, status=200 if ready else 503)
