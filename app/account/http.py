"""GET /account: the owner's balances and positions (CONTRACT.md, "Paper account")."""

from __future__ import annotations

from aiohttp import web

from app.account.reader import AccountReader
from app.http.auth import AUTH
from app.http.errors import ApiError, json_response
from app.ports import StoreError

ACCOUNT_READER = web.AppKey("account_reader", AccountReader)
routes = web.RouteTableDef()


@routes.get("/account")
async def get_account(request: web.Request) -> web.Response:
    owner = request.app[AUTH].owner(request)  # API_TOKENS set: a token, like /order*
    try:
        view = await request.app[ACCOUNT_READER].view(owner)
    except StoreError as exc:
        raise ApiError(503, f"the account could not be read: {exc}",
                       headers={"Retry-After": "1"}) from exc  # fmt: skip
    return json_response(view)
