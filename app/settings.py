"""Service configuration, read once from the environment (CONTRACT.md, "Running")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.domain import StreamKind


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
    log_format: Literal["console", "json"] = Field(
        default_factory=lambda: "console" if sys.stderr.isatty() else "json"
    )
    api_tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    rate_limit_per_s: float = Field(100, ge=0)
    max_open_orders: int = Field(10000, ge=0)

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
    # The page's files: the repository's static/ (an installed package is told where).
    static_dir: Path = Path(__file__).resolve().parents[1] / "static"

    @field_validator("binance_ws_url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

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
        name = env_name(str(item["loc"][0])) if item["loc"] else "settings"
        # Never echo secrets back into logs.
        shown = "<hidden>" if name in _SECRET_VARIABLES else repr(item.get("input"))
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}={shown}: {message}")
    return "invalid configuration: " + "; ".join(parts)
