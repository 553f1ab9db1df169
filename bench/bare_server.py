"""The ceiling for order intake: an aiohttp handler that reads the body and answers 202."""

from __future__ import annotations

import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"order_id": "x", "status": "open"}, status=202)


if __name__ == "__main__":
    from app.__main__ import install_uvloop

    install_uvloop(wanted=True)  # the same event loop as the service, whichever it is
    app = web.Application()
    app.router.add_post("/order/limit", accept)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
