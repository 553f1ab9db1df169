"""No Docker engine runs here: check the compose file, Dockerfile and Taskfile statically."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_runs_the_service_on_8080_with_a_volume() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["executor"]
    assert service["build"] == "."
    assert "8080:8080" in service["ports"]
    env = service["environment"]
    assert env["HTTP_HOST"] == "0.0.0.0" and env["ORDER_TIMEOUT_SECONDS"] == "30"
    database_dir = str(Path(env["DATABASE_PATH"]).parent)
    volume, _, mount = service["volumes"][0].partition(":")
    assert mount == database_dir and volume in compose["volumes"]
    demo = compose["services"]["demo"]
    assert demo["command"][-1] == "demo" and demo["profiles"] == ["demo"]


def test_dockerfile_serves_the_app() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["python", "-m", "app"\]$', dockerfile, re.M)
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.M)
    assert "HTTP_HOST=0.0.0.0" in dockerfile and re.search(r"^USER ", dockerfile, re.M)


def test_taskfile_has_the_documented_tasks() -> None:
    taskfile = yaml.safe_load((ROOT / "Taskfile.yml").read_text())
    assert {"setup", "run", "demo", "test", "lint", "fmt", "bench"} <= set(taskfile["tasks"])


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest"
    assert command in readme and command in ci
    assert ci.index(command) < ci.index("python -m bench --quick")
    assert "set -euo pipefail" in ci
