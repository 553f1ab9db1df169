"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from app.keys import FEED, SERVICE, STORE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    service = request.app.get(SERVICE)
    database = "ok"
    try:
        store = request.app.get(STORE)
        if store is None:
            database = "not open"
        else:
            await store.ping()
    except Exception as exc:
        database = f"error: {exc}"
    feed = request.app.get(FEED)
    ready = database == "ok" and service is not None and service.ready
    body = {
        "ready": ready,
        "database": database,
        "service": service.state() if service is not None else {"ready": False},
        "feed": feed.state() if feed is not None else None,
    }
    return web.json_response(body, status=200 if ready else 503)
