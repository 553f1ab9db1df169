"""A plain `pip install .` (not editable) ships everything the service needs: the web page
and its vendored chart library (static/), the recorded quotes (app/data/) and py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.settings import Settings
from tests import installed_smoke

ROOT = Path(__file__).resolve().parent.parent


def _source_files(folder: str) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def test_a_checkout_serves_its_own_static_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository (or an editable install), the page is the repository's."""
    monkeypatch.delenv("STATIC_DIR", raising=False)
    static = Settings(_env_file=None).static_dir  # type: ignore[call-arg]
    assert static == ROOT / "static"
    assert (static / "index.html").is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of what the build reads, offline (the dev extra brings
    setuptools), so nothing is written into the working tree."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("app", "static"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("trade_executor-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_page_the_data_and_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"app/static/{p.relative_to(ROOT / 'static').as_posix()}" for p in _source_files("static")
    }
    expected |= {p.relative_to(ROOT).as_posix() for p in _source_files("app")}
    assert (
        "app/static/vendor/lightweight-charts/lightweight-charts.standalone.production.js"
        in expected
    )
    assert any(name.startswith("app/data/") for name in expected)
    assert "app/py.typed" in expected
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    # Nothing of the repository's other folders, and no top-level `static` package.
    assert {name.split("/")[0] for name in names} <= {
        "app",
        "-".join(wheel.name.split("-")[:2]) + ".dist-info",
    }


@pytest.mark.slow
def test_the_installed_wheel_serves_the_page(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    env = {"PYTHONPATH": str(target)}  # found before the editable install of the checkout
    show = "import app.settings as s; print(s.__file__, s.Settings().static_dir)"
    where = subprocess.run(
        [sys.executable, "-c", show],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(target) for p in where), where
    installed_smoke.check([sys.executable, "-m", "app"], env)
