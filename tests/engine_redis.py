"""A throwaway Redis for the tests: a pytest plugin with two fixtures.

- `redis_url` (session): starts `redis-server` on a free port of 127.0.0.1, in a temporary
  directory, with no persistence (`--save "" --appendonly no`), and kills it at the end.
- `redis_db_url` (function): the same server with an empty keyspace (FLUSHALL before the
  test), so tests never see each other's keys.
- `redis_server_url()` and `unique_prefix()`: the same server for code that cannot take a
  fixture (the contract suites' adapter factories), isolated by key prefix.

Without `redis-server` on the machine the tests that need it are skipped with a message
naming the package, except under CI (`CI=true`), where a missing server fails them: CI must
not pass by skipping. Register with `pytest_plugins = ["tests.engine_redis"]` in the root
conftest (or, until then, in each test module that needs the fixtures). A FLUSHALL by
`redis_db_url` also clears what `redis_server_url()` users wrote: they are never mixed within
one test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

_MISSING = (
    "redis-server is not installed: the Redis adapter tests need it "
    "(Debian/Ubuntu: `apt-get install redis-server`; or put redis-server on PATH)"
)
_START_TIMEOUT_S = 10.0


def _redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found is None and os.access("/usr/bin/redis-server", os.X_OK):
        found = "/usr/bin/redis-server"
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server; a port taken between choosing and binding is retried on another."""
    last_error = ""
    for _attempt in range(5):
        port = _free_port()
        log_path = directory / f"redis-{port}.log"
        process = subprocess.Popen(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(directory),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(log_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if _ping(port):
                return process, port
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait()
        last_error = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"redis-server did not start: {last_error}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the server gets SIGKILL if pytest dies without cleaning up (kill -9)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_server: tuple[subprocess.Popen[bytes], str, tempfile.TemporaryDirectory[str]] | None = None


def _stop_server() -> None:
    global _server
    if _server is not None:
        process, _url, directory = _server
        _server = None
        process.kill()
        process.wait()
        directory.cleanup()


def redis_server_url() -> str:
    """The URL of this test run's Redis (started on first use, killed at exit).

    For code that cannot take a fixture (an adapter factory in a contract suite); it skips
    or fails the calling test like the fixtures do. Give each user its own key prefix
    (`unique_prefix()`) rather than flushing: others share this server.
    """
    global _server
    if _server is None:
        binary = _redis_server()
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail(_MISSING + " [CI=true: missing infrastructure fails, never skips]")
            pytest.skip(_MISSING)
        directory = tempfile.TemporaryDirectory(prefix="te-redis-")
        process, port = _start(binary, Path(directory.name))
        _server = (process, f"redis://127.0.0.1:{port}/0", directory)
        atexit.register(_stop_server)
    return _server[1]


def unique_prefix() -> str:
    """A key prefix no other test uses, ending in a colon."""
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield redis_server_url()
    _stop_server()


@pytest.fixture
def redis_db_url(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_url
