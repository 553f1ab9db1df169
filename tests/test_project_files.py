"""No Docker engine runs here: check the compose file, Dockerfile and Taskfile statically."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def taskfile() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Taskfile.yml").read_text())


def _named_volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    return dict(v.split(":")[:2] for v in service.get("volumes", []))


def test_compose_runs_the_service_on_8080_with_a_volume(compose: dict[str, Any]) -> None:
    service = compose["services"]["executor"]
    assert service["build"] == "."
    assert service["ports"] == ["8080:8080"]
    env = service["environment"]
    assert env == {
        "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": "8080",
        "ORDER_TIMEOUT_SECONDS": "30",
        "DATABASE_PATH": "/data/database.db",
        "LOG_FORMAT": "json",
        "BINANCE_WS_URL": "wss://stream.binance.com:9443",
        "BINANCE_REST_URL": "https://api.binance.com",
        "EXCHANGE_FILTERS": "on",
    }
    database_dir = str(Path(env["DATABASE_PATH"]).parent)
    mounts = _named_volume_mounts(service)
    assert mounts == {"executor-data": database_dir}
    assert "executor-data" in compose["volumes"]
    assert service["restart"] == "unless-stopped"
    assert service["stop_grace_period"] == "15s"


def test_compose_demo_profile(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    assert demo["profiles"] == ["demo"]
    assert demo["command"] == ["python", "-m", "app", "demo"]
    assert demo["ports"] == ["8081:8080"]
    assert demo["environment"]["HTTP_HOST"] == "0.0.0.0"
    assert demo.get("build") == "." or demo.get("image")
    for volume, mount in _named_volume_mounts(demo).items():
        assert volume in compose["volumes"] and volume != "executor-data"
        assert mount == str(Path(demo["environment"]["DATABASE_PATH"]).parent)
    assert "profiles" not in compose["services"]["executor"]  # `up` alone runs the service


def test_dockerfile_serves_the_app(dockerfile: str) -> None:
    assert dockerfile.startswith("FROM python:3.11-slim")
    assert re.search(r'^CMD \["python", "-m", "app"\]$', dockerfile, re.M)
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.M)
    assert "HTTP_HOST=0.0.0.0" in dockerfile
    # The package itself, with uvloop (the `fast` extra) in production, and the scale-out
    # adapters (`scale`) so the same image runs ROLE=api and ROLE=executor.
    assert re.search(r'pip install\b[^\n]* "\.\[fast,scale\]"(\s|$)', dockerfile, re.M)
    # Everything the build reads (setup.py maps static/ into the package).
    copied = " ".join(re.findall(r"^COPY (.+)$", dockerfile, re.M)).split()
    assert {"pyproject.toml", "setup.py", "README.md", "app", "static"} <= set(copied)
    user = re.search(r"^USER (\S+)$", dockerfile, re.M)
    assert user and user.group(1) not in ("root", "0")


def test_dockerfile_healthcheck_probes_healthz(dockerfile: str) -> None:
    healthcheck = re.search(r"^HEALTHCHECK .*?CMD (.+)$", dockerfile, re.M | re.S)
    assert healthcheck
    command = healthcheck.group(1)
    assert "urllib.request" in command and "/healthz" in command
    assert ":8080/healthz" in command  # the port the image's HTTP_PORT serves


def test_ignore_files_keep_local_state_out() -> None:
    gitignore = (ROOT / ".gitignore").read_text().split()
    for entry in (
        ".venv/", "__pycache__/", "*.db", "*.db-wal", "*.db-shm", ".pytest_cache/",
        ".ruff_cache/", ".hypothesis/", "artifacts/", "screenshots/", "*.egg-info/",
        "build/", "dist/", ".task/",
    ):  # fmt: skip
        assert entry in gitignore, entry
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "*.db"} <= set(dockerignore)


def test_taskfile_has_the_documented_tasks(taskfile: dict[str, Any]) -> None:
    assert str(taskfile["version"]) == "3"
    tasks = taskfile["tasks"]
    expected = {"setup", "run", "demo", "test", "lint", "fmt"}
    if (ROOT / "bench" / "__main__.py").is_file():
        expected.add("bench")
    assert expected <= set(tasks)
    setup = tasks["setup"]
    assert setup["cmds"][0] == "python3 -m venv .venv"
    assert re.fullmatch(r".venv/bin/pip install (-q )?-e '\.\[dev(,fast)?\]'", setup["cmds"][1])
    assert setup["sources"] and setup["generates"]  # installs once, not on every task
    for name in expected - {"setup"}:
        assert tasks[name]["deps"] == ["setup"], name
    commands = {name: " ; ".join(tasks[name]["cmds"]) for name in expected}
    assert ".venv/bin/python -m app" in commands["run"]
    assert ".venv/bin/python -m app demo" in commands["demo"]
    assert ".venv/bin/pytest" in commands["test"]
    assert "ruff check" in commands["lint"] and "ruff format --check" in commands["lint"]
    assert "ruff format" in commands["fmt"] and "ruff check --fix" in commands["fmt"]
    if "bench" in expected:
        assert ".venv/bin/python -m bench" in commands["bench"]


def _ci_commands() -> list[str]:
    """The commands .ci/run runs, one a line, without comments."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest"
    assert command in readme and command in ci
    assert ci.index(command) < ci.index("python -m bench --quick")
    assert "set -euo pipefail" in ci


def test_ci_runs_the_linters_and_type_checker() -> None:
    commands = _ci_commands()
    for linter in (
        ".venv/bin/ruff check .", ".venv/bin/ruff format --check .", ".venv/bin/mypy app",
    ):  # fmt: skip
        # Each on its own line, so `set -e` stops CI when it fails.
        assert linter in commands, linter


def test_ci_installs_the_wheel_into_a_fresh_venv_and_serves_from_it() -> None:
    commands = _ci_commands()
    build = next(i for i, c in enumerate(commands) if c.startswith(".venv/bin/pip wheel "))
    install = next(i for i, c in enumerate(commands) if '/venv/bin/pip" install' in c)
    smoke = next(i for i, c in enumerate(commands) if "-m tests.installed_smoke" in c)
    assert build < install < smoke
    assert "-e" not in commands[install].split()
    assert commands[smoke].endswith('/venv/bin/trade-executor"')


def test_the_type_checker_is_configured_and_installed() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    assert any(re.match(r"mypy\b", requirement) for requirement in dev)
    assert pyproject["tool"]["mypy"]["files"] == ["app"]  # `mypy app` and `mypy` agree
    assert (ROOT / "app" / "py.typed").is_file()
