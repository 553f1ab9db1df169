"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import app
from app.core.domain import StreamKind
from app.settings import Settings

_CHECKOUT = str(Path(app.__file__).resolve().parents[1])


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_contract_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch)
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert str(settings.database_path) == "database.db"
    assert settings.order_timeout_seconds == 30
    assert settings.binance_ws_url == "wss://stream.binance.com:9443"
    assert settings.market_stream is StreamKind.BOOK_TICKER
    assert settings.api_tokens == {} and settings.allowed_origins == ()
    assert (settings.rate_limit_per_s, settings.max_open_orders) == (100, 10000)
    assert settings.fee_rate == Decimal("0.001")


def test_the_fee_rate_is_an_exact_fraction_below_1(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings(monkeypatch, FEE_RATE="0.00075").fee_rate == Decimal("0.00075")
    assert _settings(monkeypatch, FEE_RATE="0").fee_rate == 0
    assert _settings(monkeypatch, FEE_RATE="0.999999999999999999").fee_rate < 1


def test_paper_balances_are_exact_amounts_by_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings(monkeypatch).paper_balances is None  # empty: nothing enforced
    settings = _settings(monkeypatch, PAPER_BALANCES="USDT:10000, btc:0.5")
    assert settings.paper_balances == {"USDT": Decimal(10000), "BTC": Decimal("0.5")}
    assert _settings(monkeypatch, PAPER_BALANCES=" ").paper_balances is None


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(
        monkeypatch,
        HTTP_HOST="0.0.0.0", HTTP_PORT="9000", MARKET_STREAM="depth10",
        API_TOKENS="alice:tok-a, bob:tok-b", ALLOWED_ORIGINS="http://a.example,https://b.example/",
        BINANCE_WS_URL="ws://127.0.0.1:1234/", LOG_FORMAT="json",
    )  # fmt: skip
    assert settings.http_port == 9000 and settings.market_stream is StreamKind.DEPTH10
    assert settings.market_stream.stream_name("BTCUSDT") == "btcusdt@depth10@100ms"
    assert settings.api_tokens == {"tok-a": "alice", "tok-b": "bob"}
    assert settings.allowed_origins == ("http://a.example", "https://b.example")
    assert settings.binance_ws_url == "ws://127.0.0.1:1234"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_PORT", "eighty"),
        ("HTTP_PORT", "70000"),
        ("ORDER_TIMEOUT_SECONDS", "0"),
        ("ORDER_TIMEOUT_SECONDS", "-5"),
        ("MARKET_STREAM", "depth7"),
        ("MARKET_STREAM", "bookticker"),
        ("BINANCE_WS_URL", "http://example.com"),
        ("LOG_FORMAT", "xml"),
        ("API_TOKENS", "alice"),
        ("RATE_LIMIT_PER_S", "-1"),
        ("MAX_OPEN_ORDERS", "many"),
        ("FEE_RATE", "1"),
        ("FEE_RATE", "-0.001"),
        ("FEE_RATE", "NaN"),
        ("FEE_RATE", "0.1%"),
        ("PAPER_BALANCES", "USDT=10000"),
        ("PAPER_BALANCES", "USDT:-1"),
        ("PAPER_BALANCES", "USDT:1,usdt:2"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line(name: str, value: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={"PATH": "/usr/bin:/bin", name: value, "DATABASE_PATH": str(tmp_path / "x.db"),
             "PYTHONPATH": _CHECKOUT},  # this checkout's app, whatever is installed
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("invalid configuration:") and name in lines[0]
    assert not (tmp_path / "x.db").exists()


def test_stream_names_are_spelled_exactly() -> None:
    assert StreamKind.BOOK_TICKER.stream_name("BTCUSDT") == "btcusdt@bookTicker"
    assert StreamKind.DEPTH5.stream_name("LtcBtc") == "ltcbtc@depth5@100ms"
    assert StreamKind.DEPTH20.stream_name("ETHBTC") == "ethbtc@depth20@100ms"
