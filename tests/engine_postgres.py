"""A pytest plugin: a throwaway PostgreSQL server for the tests that need one.

`postgres_url` (session) starts a private server from the installed PostgreSQL binaries
(Debian: `apt-get install postgresql`) in a temporary directory, on a free port of
127.0.0.1, with trust authentication and fsync off, and removes it at the end of the
session. Without the binaries the tests that use it are skipped, except under CI=true,
where they fail: CI installs PostgreSQL, and a silent skip there would hide that it did not.

`postgres_store_url` (function) is a fresh, empty database on that server for one test.

PostgreSQL refuses to run as root: as root, the server's commands run as the `postgres`
system user (`runuser -u postgres --`), and its directory is given to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg  # type: ignore[import-untyped]
import pytest

_INSTALL_HINT = "apt-get install postgresql (Debian/Ubuntu), or set PG_BIN to its bin directory"


def _missing(reason: str) -> NoReturn:
    message = f"PostgreSQL server binaries not usable: {reason}; install them: {_INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _find_bin_dir() -> Path | None:
    candidates: list[str] = []
    if os.environ.get("PG_BIN"):
        candidates.append(os.environ["PG_BIN"])
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        path = Path(candidate)
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="engine-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                self.remove()
                _missing("running as root and there is no `postgres` user to run the server")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [*self.as_postgres, str(self.bin_dir / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"\n{log}"
            )

    def start(self) -> str:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        for attempt in range(5):  # a free port can be taken before the server binds it
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                    "-w", "-t", "60", "start",
                )  # fmt: skip
            except RuntimeError:
                if attempt == 4:
                    raise
                continue
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://postgres@127.0.0.1:PORT/postgres` of a private server for the session."""
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _missing("initdb, pg_ctl and postgres not found under /usr/lib/postgresql/*/bin")
    server = _Server(bin_dir)
    try:
        url = server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        _missing(f"the server did not start: {exc}")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
async def postgres_store_url(postgres_url: str) -> AsyncIterator[str]:
    """A new empty database on the session's server, for one test; dropped after it."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
