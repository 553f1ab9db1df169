"""Clients that send too slowly, or go away mid-request, are bounded and logged in one line.

Raw sockets against the real app, with a short read timeout injected through create_app.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from app.application import create_app
from app.http import errors
from app.intake import http as orders
from app.settings import Settings

READ_TIMEOUT_S = 0.3
BODY = json.dumps({"symbol": "LTCBTC", "order_size": "1", "price": "5"}).encode()


HANDLING = web.AppKey("handling", asyncio.Event)


@web.middleware
async def _mark_handling(request: web.Request, handler: Any) -> web.StreamResponse:
    request.app[HANDLING].set()  # a handler has the request (and is about to read its body)
    return await handler(request)  # type: ignore[no-any-return]


@dataclass
class Server:
    app: web.Application
    host: str
    port: int


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[Server]:
    """The app served as `python -m app` serves it (aiohttp's TestServer differs: it cancels
    a handler whose client goes away, which web.run_app does not do by default)."""
    app = create_app(make_settings(), read_timeout_s=READ_TIMEOUT_S)
    app[HANDLING] = asyncio.Event()
    app.middlewares.append(_mark_handling)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield Server(app, host, port)
    await runner.cleanup()


def _head(server: Server, content_length: int) -> bytes:
    return (
        f"POST /order/limit HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


async def _read_to_eof(reader: asyncio.StreamReader, limit_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    async with asyncio.timeout(limit_s):
        return await reader.read()


async def _stored(server: Server) -> list[Any]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await _read_to_eof(reader)
    writer.close()
    return list(json.loads(answer.partition(b"\r\n\r\n")[2])["orders"])


class Recorder:
    """Stands in for a module's structlog logger: every call, and an event on the first."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.called = asyncio.Event()

    def __getattr__(self, level: str) -> Callable[..., None]:
        def record(event: str, *args: Any, **fields: Any) -> None:
            self.calls.append((level, event, fields))
            self.called.set()

        return record


@pytest.fixture
def app_log(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(errors, "log", recorder)
    monkeypatch.setattr(orders, "log", recorder, raising=False)
    return recorder


async def test_a_body_that_stops_coming_is_answered_408_and_the_connection_closed(
    server: Server, app_log: Recorder
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(_head(server, len(BODY)) + BODY[:10])  # ... and the rest never comes
    answer = await _read_to_eof(reader)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"Connection: close" in head
    error = json.loads(body)["error"]
    assert error["code"] == "request_timeout"
    assert error["message"] == f"request body not received within {READ_TIMEOUT_S:g} s"
    assert [(level, event) for level, event, _ in app_log.calls] == [("info", "http.body_timeout")]
    assert await _stored(server) == []


async def test_headers_that_stop_coming_close_the_connection(server: Server) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"POST /order/limit HTTP/1.1\r\nHost: {server.host}\r\n".encode())
    assert await _read_to_eof(reader) == b""  # closed, without an answer
    writer.close()


async def test_an_idle_connection_is_closed(server: Server) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    assert await _read_to_eof(reader) == b""
    writer.close()


async def test_a_complete_request_is_unaffected(server: Server) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(_head(server, len(BODY)))
    await writer.drain()
    writer.write(BODY)  # the body in a second write, still in time
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 202 "), head
    writer.close()
    assert len(await _stored(server)) == 1


async def test_a_client_gone_mid_body_is_one_short_log_line(
    server: Server, app_log: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(_head(server, len(BODY)) + BODY[:10])
    await asyncio.wait_for(server.app[HANDLING].wait(), 5)
    writer.close()  # gone while the handler waits for the rest of the body
    await writer.wait_closed()
    await asyncio.wait_for(app_log.called.wait(), 5)
    assert [(level, event) for level, event, _ in app_log.calls] == [("info", "http.body_aborted")]
    _, _, fields = app_log.calls[0]
    assert "exc_info" not in fields and len(repr(fields)) < 300
    assert not [r for r in caplog.records if r.exc_info], caplog.text  # no traceback anywhere
    assert await _stored(server) == []
