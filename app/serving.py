"""Listening: the HTTP port is bound before anything starts, so a port in use is one line
and no database is touched; then the app is served until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
from collections.abc import Callable, Sequence

from aiohttp import web


class CannotListen(Exception):
    """The HTTP address cannot be bound; the message is the one line to print."""


def listen(host: str, port: int, backlog: int = 128) -> list[socket.socket]:
    """Bind and listen on every address `host` resolves to, before anything else starts.

    A port in use is found here, before the database is opened: the instance that holds
    the port may well be using the same database. (As asyncio's create_server does:
    SO_REUSEADDR on POSIX, IPv6 sockets IPv6-only.)
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise CannotListen(f"cannot listen on {where}: {exc.strerror} (set HTTP_HOST)") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason, variable = "address already in use", "HTTP_PORT"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason, variable = "no such address on this machine", "HTTP_HOST"
        else:
            reason, variable = (exc.strerror or str(exc)).lower(), "HTTP_HOST or HTTP_PORT"
        raise CannotListen(f"cannot listen on {where}: {reason} (set {variable})") from None
    return sockets


def listening_url(host: str, sockets: Sequence[socket.socket]) -> str:
    port = sockets[0].getsockname()[1] if sockets else 0
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def run_until_stopped(
    app: web.Application,
    sockets: Sequence[socket.socket],
    *,
    on_listening: Callable[[], None],
    shutdown_timeout: float = 2.0,
) -> None:
    """Serve `app` on the bound `sockets` until SIGINT or SIGTERM, then shut down as
    aiohttp's run_app does: stop accepting, close the websockets (1001, on_shutdown), let
    requests in flight finish, then the cleanup contexts (orders, feed, store)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still cancels
            loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=shutdown_timeout, handle_signals=False
    )
    try:
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        on_listening()
        await stop.wait()
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()
