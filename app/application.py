"""The application factory: one `setup_*` per concern, lifetimes in cleanup contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from app.bus import InProcessBus
from app.domain import BookUpdate
from app.feed.binance import BinanceFeed
from app.http import health, orders, ws
from app.http.auth import Authenticator
from app.http.errors import error_middleware
from app.http.limits import MAX_BODY_BYTES, READ_TIMEOUT, READ_TIMEOUT_S, RateLimiter
from app.http.openapi import setup_openapi
from app.http.origin import origin_middleware
from app.http.pages import setup_pages
from app.keys import (
    AUTH,
    BUS,
    FEED,
    MARKET,
    PUSH_HUB,
    RATE_LIMITER,
    SERVICE,
    SETTINGS,
    STORE,
    TASKS,
)
from app.market import MarketInterest
from app.metrics import setup_metrics
from app.push.hub import PushHub
from app.service.orders import OrderService
from app.settings import Settings
from app.store.sqlite import SqliteStore
from app.tasks import TaskSupervisor

log = structlog.get_logger(__name__)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await SqliteStore.open(
        settings.database_path, busy_timeout_ms=settings.db_busy_timeout_ms
    )
    app[STORE] = store
    log.info("store.opened", path=str(settings.database_path))
    yield
    await store.close()
    log.info("store.closed")


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    """Service and feed live together: the feed feeds the service, the service steers it."""
    settings = app[SETTINGS]
    tasks = app[TASKS] = TaskSupervisor()
    bus = app[BUS] = InProcessBus()
    service: OrderService | None = None
    hub: PushHub | None = None

    def on_update(update: BookUpdate) -> None:
        if service is not None:
            service.on_update(update)
        if hub is not None:
            hub.on_update(update)

    def on_stream_lost(symbols: set[str]) -> None:
        if service is not None:
            service.on_stream_lost(symbols)

    feed = app[FEED] = BinanceFeed(
        settings.binance_ws_url,
        settings.market_stream,
        on_update,
        on_stream_lost,
        unsubscribe_delay_s=settings.unsubscribe_delay_s,
        stall_timeout_s=settings.feed_stall_timeout_s,
        max_connection_age_s=settings.feed_max_connection_age_s,
    )
    market = app[MARKET] = MarketInterest(feed)
    service = app[SERVICE] = OrderService(
        app[STORE],
        bus,
        market,
        tasks,
        default_timeout_s=settings.order_timeout_seconds,
        max_open_orders=settings.max_open_orders,
        idle_worker_s=settings.unsubscribe_delay_s,
    )
    hub = app[PUSH_HUB] = PushHub(bus, acquire_book=market.acquire, release_book=market.release)
    tasks.spawn(hub.run(), name="push-hub", endless=True)
    await feed.start()
    await service.start()
    yield
    await service.stop()
    await tasks.close(timeout=settings.shutdown_timeout_s / 2)
    await feed.stop()


def create_app(settings: Settings, *, read_timeout_s: float = READ_TIMEOUT_S) -> web.Application:
    """The service; `read_timeout_s` bounds how long a client may take to send a request.

    Headers: aiohttp closes a connection that has not sent a whole request line and headers
    within its keep-alive timeout (counted from the connection or from the previous answer),
    so that timeout is `read_timeout_s`. Body: `read_body` answers 408 past it. Whatever
    is left of an unread body is drained for at most `read_timeout_s` too.
    """
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[error_middleware, origin_middleware],
        handler_args={"keepalive_timeout": read_timeout_s, "lingering_time": read_timeout_s},
    )
    app[SETTINGS] = settings
    app[READ_TIMEOUT] = read_timeout_s
    app[AUTH] = Authenticator(settings.api_tokens)
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_s)
    app.add_routes(health.routes)
    app.add_routes(orders.routes)
    app.add_routes(ws.routes)
    setup_pages(app, settings.static_dir)
    setup_metrics(app)
    setup_openapi(app)
    app.on_shutdown.append(ws.close_all)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_service_ctx)
    return app
