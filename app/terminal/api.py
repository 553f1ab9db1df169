"""The service as the terminal commands see it: base URL, token, and one-line errors.

Every refusal (401, 404, 422 with its details, 429, ...) and every failure to reach the
service becomes an `ApiError` whose text is the single line the command prints before
exiting with `EXIT_REFUSED`.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

EXIT_REFUSED = 2  # the request was refused or the service could not be reached


class ApiError(Exception):
    """A request the service refused (`status`), or could not answer (status None)."""

    def __init__(self, line: str, status: int | None = None) -> None:
        super().__init__(line)
        self.status = status


def default_url() -> str:
    """API_URL, else http://HTTP_HOST:HTTP_PORT (a wildcard host means this machine)."""
    if os.environ.get("API_URL"):
        return os.environ["API_URL"]
    host = os.environ.get("HTTP_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{os.environ.get('HTTP_PORT', '8080')}"


def default_token() -> str | None:
    return os.environ.get("API_TOKEN") or None


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def error_line(status: int, payload: Any) -> str:
    """`error 422 validation_error: price: must be greater than 0; ...` from an error body."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        text = str(payload).strip() if payload not in (None, "") else "no details"
        return f"error {status}: {' '.join(text.split())}"
    code = f" {error['code']}" if error.get("code") else ""
    message = str(error.get("message") or "").strip()
    details = [
        f"{item.get('field')}: {item.get('message')}" if item.get("field") else str(item)
        for item in error.get("details") or []
        if isinstance(item, dict)
    ]
    text = "; ".join(details) if details else message
    if details and message and not all(d in message for d in details):
        text = f"{message} ({text})"
    return f"error {status}{code}: {' '.join(text.split())}"


class Api:
    """GET/POST JSON against the service; `ApiError` for anything but a 2xx."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token

    @property
    def ws_url(self) -> str:
        return f"{self.base_url.replace('http', 'ws', 1)}/ws"

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.token)

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self._request("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._request("POST", path, json=body)

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        try:
            async with self.session.request(
                method, f"{self.base_url}{path}", headers=self.headers, **options
            ) as response:
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = await response.text()
        except aiohttp.ClientError as exc:
            raise ApiError(f"error: cannot reach {self.base_url}: {exc}") from None
        if not 200 <= response.status < 300:
            raise ApiError(error_line(response.status, payload), response.status)
        return payload
