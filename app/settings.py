"""Service configuration, read once from the environment (CONTRACT.md, "Running")."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.balances import parse_paper_balances
from app.core.domain import StreamKind
from app.core.fees import DEFAULT_FEE_RATE, check_fee_rate


def _default_static_dir() -> Path:
    """static/ at the top of the repository ships in the wheel as app/static (setup.py);
    a checkout or an editable install serves the repository's own folder."""
    package = Path(__file__).resolve().parent
    installed = package / "static"
    return installed if installed.is_dir() else package.parent / "static"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    database_path: Path = Path("./database.db")
    order_timeout_seconds: float = Field(30.0, gt=0, le=86400)
    binance_ws_url: str = "wss://stream.binance.com:9443"
    market_stream: StreamKind = StreamKind.BOOK_TICKER
    # Paper account (CONTRACT.md): Binance's symbol filters, read from its REST API.
    binance_rest_url: str = "https://api.binance.com"
    exchange_filters: Literal["on", "off"] = "on"
    log_format: Literal["console", "json"] = Field(
        default_factory=lambda: "console" if sys.stderr.isatty() else "json"
    )
    api_tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    rate_limit_per_s: float = Field(100, ge=0)
    max_open_orders: int = Field(10000, ge=0)
    # Running as several processes (CONTRACT.md): the role, and the shared store and bus.
    role: Literal["all", "api", "executor"] = "all"
    store_url: str = ""  # empty: SQLite at database_path
    bus_url: str = ""  # empty: in process
    partitions: int = Field(16, ge=1, le=1024)  # symbol partitions shared out among executors
    lease_ttl_s: float = Field(10.0, gt=0, le=13)  # a dead executor's partitions move after it
    # OpenTelemetry (app/tracing.py): otlp sends to OTEL_EXPORTER_OTLP_ENDPOINT.
    tracing: Literal["off", "console", "otlp"] = "off"
    # Paper account (CONTRACT.md): the fee of a fill, as a fraction of its value.
    fee_rate: Decimal = DEFAULT_FEE_RATE
    # `ASSET:amount,...`: what each owner starts with when first seen; empty (None): no
    # balance is enforced, everything is still counted.
    paper_balances: Annotated[dict[str, Decimal] | None, NoDecode] = None

    # Internal tuning, not part of the contract.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    unsubscribe_delay_s: float = Field(5.0, ge=0)
    feed_stall_timeout_s: float = Field(10.0, gt=0)
    feed_max_connection_age_s: float = Field(23.5 * 3600, gt=0)
    shutdown_timeout_s: float = Field(8.0, gt=0)
    ws_max_connections_per_owner: int = Field(64, ge=1)
    ws_max_subscriptions: int = Field(256, ge=1)
    db_busy_timeout_ms: int = Field(5000, ge=0)
    uvloop: bool = True  # used when installed (`pip install -e '.[fast]'`)
    # The page's files: inside the package when installed from a wheel, else the checkout's.
    static_dir: Path = Field(default_factory=_default_static_dir)

    @field_validator("binance_ws_url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

    @field_validator("fee_rate")
    @classmethod
    def _fee_rate(cls, value: Decimal) -> Decimal:
        return check_fee_rate(value)  # every fee exact: 0 <= rate < 1, <= 18 decimals

    @field_validator("paper_balances", mode="before")
    @classmethod
    def _paper_balances(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_paper_balances(value)  # ValueError names the bad entry
        return value

    @field_validator("binance_rest_url")
    @classmethod
    def _rest_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://api.binance.com")
        if parts.query or parts.fragment:
            raise ValueError("must be a base URL, without ?query or #fragment")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        return value.strip().rstrip("/")

    @field_validator("exchange_filters", mode="before")
    @classmethod
    def _on_or_off(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("on", "off"):
                raise ValueError("must be on or off")
        return value

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        # memory:// keeps nothing: for tests and benchmarks only, never for orders that matter.
        if value and not value.startswith(("postgresql://", "postgres://", "memory://")):
            raise ValueError("must be empty (SQLite) or a postgresql:// URL")
        return value

    @field_validator("bus_url")
    @classmethod
    def _bus_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be empty (in process) or a redis:// URL")
        return value

    @model_validator(mode="after")
    def _roles_apart_need_shared_engines(self) -> Settings:
        if self.role != "all" and not self.store_url.startswith(("postgresql:", "postgres:")):
            raise ValueError(f"STORE_URL: ROLE={self.role} needs a postgresql:// store")
        if self.role != "all" and not self.bus_url:
            raise ValueError(f"BUS_URL: ROLE={self.role} needs a redis:// bus")
        if self.bus_url and not self.store_url.startswith(("postgresql:", "postgres:")):
            raise ValueError("STORE_URL: a redis:// BUS_URL needs a postgresql:// store")
        return self

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _owner_token_pairs(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        tokens: dict[str, str] = {}
        for pair in filter(None, (part.strip() for part in value.split(","))):
            owner, sep, token = pair.partition(":")
            if not sep or not owner or not token:
                raise ValueError("expected comma-separated owner:token pairs")
            if token in tokens:
                raise ValueError("a token is listed twice")
            tokens[token] = owner
        return tokens

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value


_SECRET_VARIABLES = frozenset({"API_TOKENS"})


def env_name(field: str) -> str:
    return field.upper()


def describe_error(error: ValidationError) -> str:
    """One line naming every bad variable, for a start-up failure."""
    parts = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule across variables: its message names them
            parts.append(message)
            continue
        name = env_name(str(item["loc"][0]))
        # Never echo secrets back into logs.
        shown = "<hidden>" if name in _SECRET_VARIABLES else repr(item.get("input"))
        parts.append(f"{name}={shown}: {message}")
    return "invalid configuration: " + "; ".join(parts)
