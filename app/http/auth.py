"""Who is asking: the owner behind a bearer token (or the one anonymous owner)."""

from __future__ import annotations

import hmac

from aiohttp import web

from app.http.errors import ApiError

ANONYMOUS = "anonymous"


class Authenticator:
    def __init__(self, tokens: dict[str, str]) -> None:
        # Encoded once; compared in constant time against every token, so timing says
        # nothing about which token (or how much of one) matched.
        self._tokens = [(token.encode(), owner) for token, owner in tokens.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def owner_of_token(self, token: str | None) -> str | None:
        if not self._tokens:
            return ANONYMOUS
        if not token:
            return None
        candidate = token.encode()
        found = None
        for known, owner in self._tokens:
            if hmac.compare_digest(known, candidate):
                found = owner
        return found

    def owner(self, request: web.Request, *, allow_query: bool = False) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        if not token and allow_query:
            token = request.query.get("token", "")
        owner = self.owner_of_token(token.strip())
        if owner is None:
            raise ApiError(
                401,
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="trade-executor"'},
            )
        return owner


AUTH = web.AppKey("auth", Authenticator)
