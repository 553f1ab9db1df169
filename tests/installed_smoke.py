"""Smoke-test an installed service: start it, fetch the page and its script, stop it.

Standard library only, so CI can point it at a plain (non-editable) install in another venv:

    .venv/bin/python -m tests.installed_smoke /tmp/venv/bin/trade-executor

It runs the command in an empty temporary directory (nothing of the repository around it),
with a free port, a throwaway database, and market-data and exchange-info URLs nobody
listens on (nothing reaches Binance).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence

PAGES = ("/", "/static/app.js", "/static/vendor/lightweight-charts/LICENSE")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check(command: Sequence[str], extra_env: Mapping[str, str] | None = None) -> None:
    """Raise AssertionError unless `command` serves every page in PAGES and exits 0 on SIGTERM."""
    with tempfile.TemporaryDirectory() as workdir:
        port = _free_port()
        env = {key: value for key, value in os.environ.items() if key != "STATIC_DIR"}
        env.update(
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=str(port),
            DATABASE_PATH=os.path.join(workdir, "smoke.db"),
            BINANCE_WS_URL=f"ws://127.0.0.1:{_free_port()}",
            BINANCE_REST_URL=f"http://127.0.0.1:{_free_port()}",
            LOG_FORMAT="json",
            LOG_LEVEL="error",
            **(extra_env or {}),
        )
        process = subprocess.Popen(
            list(command), cwd=workdir, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            # Printed once listening (within 30 s, or the check fails rather than hangs).
            ready, _, _ = select.select([process.stdout], [], [], 30)
            line = process.stdout.readline() if ready else ""
            url = f"http://127.0.0.1:{port}"
            assert url in line, f"no 'listening on {url}' line, got {line!r}"
            for path in PAGES:
                with urllib.request.urlopen(url + path, timeout=5) as response:
                    assert response.status == 200, (path, response.status)
                    assert response.read(), path
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=10)
        assert code == 0, f"exit code {code} after SIGTERM"


def main(argv: Sequence[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m tests.installed_smoke COMMAND [ARG...]")
    check(argv)
    print(f"installed service OK: {' '.join(argv)} served {', '.join(PAGES)}")


if __name__ == "__main__":
    main(sys.argv[1:])
