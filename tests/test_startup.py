"""Starting `python -m app`: it says where it listens, and a port in use is one clear line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.service_process import free_port

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "DATABASE_PATH": str(tmp_path / "orders.db"),
        "BINANCE_WS_URL": f"ws://127.0.0.1:{free_port()}",  # nobody there: no internet needed
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "error",
    }


@pytest.mark.parametrize("command", [[], ["demo"]], ids=["serve", "demo"])
def test_a_port_in_use_is_one_line_naming_it_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "app", *command], env=_env(tmp_path, port), cwd=tmp_path,
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"cannot listen on 127.0.0.1:{port}: address already in use (set HTTP_PORT)"
    ], result.stderr
    # The port is checked before anything starts: the database (maybe another running
    # instance's) is not opened, recovered or created.
    assert not (tmp_path / "orders.db").exists()


async def test_it_prints_where_it_listens_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        url = f"http://127.0.0.1:{port}"
        assert line == (
            f"trade executor listening on {url} (market data: {env['BINANCE_WS_URL']})\n"
        )
        # Printed once listening: the service answers straight away.
        async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert await process.stdout.read() == b""  # one line, nothing else on stdout
