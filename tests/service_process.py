"""Run the real service (`python -m app`) as a child process, for crash and restart tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rest_url_of(upstream: str) -> str:
    """The emulator's REST base for its websocket base: it serves both on one port."""
    return "http" + upstream.removeprefix("ws") if upstream.startswith("ws") else upstream


class ServiceProcess:
    """`python -m app` against the emulator at `upstream`, for market data and exchange
    info alike (never Binance). EXCHANGE_FILTERS is off unless `env` turns it on: the
    `emulator` fixture lists symbols as Binance does, and these tests use made-up ones."""

    def __init__(
        self, database: Path, upstream: str, *, log_path: Path | None = None, **env: str
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "DATABASE_PATH": str(database),
            "BINANCE_WS_URL": upstream,
            "BINANCE_REST_URL": rest_url_of(upstream),
            "EXCHANGE_FILTERS": "off",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "warning",
            "UNSUBSCRIBE_DELAY_S": "0.2",
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab") if self.log_path else asyncio.subprocess.DEVNULL
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", env=self.env, stderr=log
            )
        finally:
            if not isinstance(log, int):
                log.close()  # the child holds its own descriptor
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"service exited with {self.process.returncode}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)  # a child process has no event to await

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, timeout: float = 10.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def wait_for_order(
        self, order_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll the order until `condition` holds: another process offers no event to await."""
        async with asyncio.timeout(timeout):
            while True:
                _, order = await self.request("GET", f"/orders/{order_id}")
                if condition(order):
                    return order  # type: ignore[no-any-return]
                await asyncio.sleep(0.02)

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}{path}", **kwargs) as response,
        ):
            return response.status, await response.json()
