"""The composition root: builds the process for its role; nothing else picks adapters.

Settings choose the adapters (SQLite or a `STORE_URL`, in-process or a `BUS_URL`) and the
role chooses the parts: `all` runs intake, push and execution in one process (the embedded
default); `api` runs intake and push; `executor` runs execution. Each part's lifetime is a
cleanup context, started in this order and stopped in reverse:

    tracing  (TRACING: off, or spans exported until everything else has stopped)
    adapters (store, bus, command queue, limiter, tasks)
    market   (the upstream feed and who holds which symbol)        executor, all
    push     (the hub: /ws fan-out)                               api, all
    intake   (order handlers' service, the exchange's filters)     api, all
    execution (symbol workers; recovery, then commands)           executor, all
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from app import tracing
from app.account import http as account_http
from app.account.quotes import LatestQuotes
from app.account.reader import AccountReader
from app.adapters.binance.exchange_info import ExchangeInfoClient, FiltersOff
from app.adapters.binance.feed import BinanceFeed
from app.adapters.inprocess import InProcessBus, InProcessCommandQueue
from app.adapters.local_limiter import LocalLimiter
from app.adapters.memory_store import MemoryStore
from app.adapters.sqlite_store import SqliteStore
from app.core.domain import BookUpdate
from app.execution.book_interest import follow_book_interest
from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.execution.ownership import PartitionOwnership
from app.http import health, symbols
from app.http.auth import AUTH, Authenticator
from app.http.book_history import BOOK_HISTORY, BookHistory
from app.http.book_history import routes as book_history_routes
from app.http.errors import error_middleware
from app.http.limits import MAX_BODY_BYTES, READ_TIMEOUT, READ_TIMEOUT_S
from app.http.metrics import setup_metrics
from app.http.openapi import setup_openapi
from app.http.origin import origin_middleware
from app.http.pages import setup_pages
from app.intake import http as intake_http
from app.intake.service import IntakeService
from app.keys import (
    BOOKS,
    BUS,
    COMMANDS,
    EXECUTOR,
    FEED,
    FILTERS,
    INTAKE,
    LIMITER,
    MARKET,
    PUSH_HUB,
    SETTINGS,
    STORE,
    TASKS,
)
from app.ports import EventBus, ExchangeFilters, OrderStore, Outbox, PartitionLeases
from app.push import ws
from app.push.hub import PushHub
from app.push.relay import PublishedByRelay, relay_forever
from app.settings import Settings
from app.tasks import TaskSupervisor

log = structlog.get_logger(__name__)


class ConfigurationError(RuntimeError):
    """The settings ask for something this process cannot build (one line, named)."""


async def open_store(settings: Settings) -> OrderStore:
    """The store `STORE_URL` names; SQLite at `DATABASE_PATH` when it is empty.

    `memory://` is the in-memory adapter: nothing survives the process (benchmarks, tests).
    """
    if settings.store_url.startswith("memory:"):
        log.warning("store.in_memory", note="nothing is durable: for tests and benchmarks only")
        return MemoryStore()
    if settings.store_url:
        from app.adapters.postgres_store import PostgresStore

        return await PostgresStore.open(settings.store_url)
    return await SqliteStore.open(
        settings.database_path, busy_timeout_ms=settings.db_busy_timeout_ms
    )


def open_exchange_filters(settings: Settings) -> ExchangeFilters:
    """Binance's symbol filters read from `BINANCE_REST_URL` (lazily: nothing is asked
    before the first order of a symbol), or none with EXCHANGE_FILTERS=off."""
    if settings.exchange_filters == "off":
        log.info("exchange_filters.off", note="orders are not checked against exchange info")
        return FiltersOff()
    return ExchangeInfoClient(settings.binance_rest_url)


def executor_id() -> str:
    """This process, as the leases and the command queue name it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


OWNER_ID = web.AppKey("owner_id", str)


class QuoteFanout:
    """The feed's one callback, handing each quote to every part that takes quotes."""

    def __init__(self) -> None:
        self.on_update: list[Callable[[BookUpdate], None]] = []
        self.on_stream_lost: list[Callable[[set[str]], None]] = []

    def update(self, update: BookUpdate) -> None:
        for consumer in self.on_update:
            consumer(update)

    def stream_lost(self, symbols: set[str]) -> None:
        for consumer in self.on_stream_lost:
            consumer(symbols)


QUOTES = web.AppKey("quotes", QuoteFanout)
# The latest quote per symbol this process sees: market buys' reserves, unrealized P&L.
LATEST_QUOTES = web.AppKey("latest_quotes", LatestQuotes)


async def _tracing_ctx(app: web.Application) -> AsyncIterator[None]:
    """TRACING=console|otlp: spans for every order (app/tracing.py). Off leaves it alone."""
    mode = app[SETTINGS].tracing
    if mode == "off":
        yield
        return
    try:
        tracing.configure(mode)
    except tracing.TracingUnavailable as exc:
        raise ConfigurationError(str(exc)) from exc
    log.info("tracing.on", exporter=mode)
    yield
    await asyncio.to_thread(tracing.shutdown)  # the last spans are exported (may block)


async def _adapters_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store, bus, command queue and limiter: in process by default; PostgreSQL and
    Redis when STORE_URL and BUS_URL name them. A store with an outbox publishes events
    through the relay (the services' own publish then does nothing: no event twice)."""
    settings = app[SETTINGS]
    tasks = app[TASKS] = TaskSupervisor()
    store = app[STORE] = await open_store(settings)
    log.info("store.opened", store=settings.store_url.split("@")[-1] or str(settings.database_path))
    closers: list[Callable[[], Awaitable[None]]] = []
    if settings.bus_url:
        from app.adapters.redis_bus import RedisEventBus
        from app.adapters.redis_commands import RedisCommandQueue
        from app.adapters.redis_limiter import RedisLimiter

        redis_bus = RedisEventBus(settings.bus_url)
        await redis_bus.start()  # reading from now: no subscription can miss an event
        bus: EventBus = redis_bus
        commands = RedisCommandQueue(
            settings.bus_url, partitions=settings.partitions, consumer=app[OWNER_ID]
        )
        limiter = RedisLimiter(
            settings.bus_url, settings.rate_limit_per_s, settings.max_open_orders
        )
        from app.adapters.redis_book import RedisBookChannel

        books = app[BOOKS] = RedisBookChannel(settings.bus_url)
        closers += [bus.close, commands.close, limiter.close, books.close]  # type: ignore[attr-defined]
        app[COMMANDS], app[LIMITER] = commands, limiter
    else:
        bus = InProcessBus()
        app[COMMANDS] = InProcessCommandQueue()
        app[LIMITER] = LocalLimiter(settings.rate_limit_per_s, settings.max_open_orders)
    if isinstance(store, Outbox):
        app[BUS] = PublishedByRelay(bus)
        tasks.spawn(relay_forever(store, bus.publish), name="outbox-relay", endless=True)
    else:
        app[BUS] = bus
    yield
    await tasks.close(timeout=settings.shutdown_timeout_s / 2)
    for close in closers:
        await close()
    await store.close()
    log.info("store.closed")


async def _market_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    quotes = app[QUOTES] = QuoteFanout()
    feed = BinanceFeed(
        settings.binance_ws_url,
        settings.market_stream,
        quotes.update,
        quotes.stream_lost,
        unsubscribe_delay_s=settings.unsubscribe_delay_s,
        stall_timeout_s=settings.feed_stall_timeout_s,
        max_connection_age_s=settings.feed_max_connection_age_s,
    )
    app[FEED] = feed
    app[MARKET] = MarketInterest(feed)
    latest = app[LATEST_QUOTES]
    quotes.on_update.append(latest.on_update)
    quotes.on_stream_lost.append(latest.forget)
    await feed.start()
    yield
    await feed.stop()


async def _push_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub. Its book quotes come from this process's feed, or, beside other processes,
    from the book channel that the symbol's executor publishes on."""
    latest = app[LATEST_QUOTES]
    reader = app[account_http.ACCOUNT_READER] = AccountReader(
        app[STORE], latest, opening=app[SETTINGS].paper_balances
    )
    books = app.get(BOOKS)
    if books is not None:
        from app.adapters.redis_book import RedisBookChannel

        assert isinstance(books, RedisBookChannel)
        hub = app[PUSH_HUB] = PushHub(
            app[BUS], acquire_book=books.watch, release_book=books.unwatch,
            read_account=reader.view,
        )  # fmt: skip

        history = app[BOOK_HISTORY]

        def relayed(update: BookUpdate) -> None:
            hub.on_update(update)
            latest.on_update(update)
            history.on_update(update)

        books.listen(relayed)
    else:
        market = app[MARKET]
        hub = app[PUSH_HUB] = PushHub(
            app[BUS], acquire_book=market.acquire, release_book=market.release,
            read_account=reader.view,
        )  # fmt: skip
        app[QUOTES].on_update.append(hub.on_update)
        app[QUOTES].on_update.append(app[BOOK_HISTORY].on_update)
    app[TASKS].spawn(hub.run(), name="push-hub", endless=True)
    yield


async def _intake_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]

    def execution_ready() -> bool:
        executor = app.get(EXECUTOR)
        return executor is None or executor.ready

    filters = app[FILTERS] = open_exchange_filters(settings)
    intake = app[INTAKE] = IntakeService(
        app[STORE],
        app[COMMANDS],
        app[BUS],
        app[LIMITER],
        default_timeout_s=settings.order_timeout_seconds,
        max_open_orders=settings.max_open_orders,
        execution_ready=execution_ready,
        paper_balances=settings.paper_balances,
        best_ask=app[LATEST_QUOTES].best_ask,
        best_bid=app[LATEST_QUOTES].best_bid,
        filters=filters,
    )
    try:
        await intake.start()
        yield
        await intake.stop()
    finally:
        await filters.close()


async def _execution_ctx(app: web.Application) -> AsyncIterator[None]:
    """Alone (no BUS_URL): every symbol, recovered at start. Beside other executors: the
    partitions this one holds leases on, taken and handed over by `PartitionOwnership`."""
    settings = app[SETTINGS]
    beside_others = bool(settings.bus_url)
    executor = app[EXECUTOR] = Executor(
        app[STORE],
        app[BUS],
        app[MARKET],
        app[LIMITER],
        app[TASKS],
        idle_worker_s=settings.unsubscribe_delay_s,
        partitions=settings.partitions if beside_others else None,
        owner_id=app[OWNER_ID],
        fee_rate=settings.fee_rate,
    )
    quotes = app[QUOTES]
    quotes.on_update.insert(0, executor.on_update)  # matching before the book channel
    quotes.on_stream_lost.append(executor.on_stream_lost)
    await executor.start()  # recovery first: commands then arrive after the resumed orders
    if not beside_others:
        app[COMMANDS].consume(executor.on_command)
        yield
        await executor.stop()
        return
    from app.adapters.redis_book import RedisBookChannel
    from app.adapters.redis_members import RedisMembers

    store, commands = app[STORE], app[COMMANDS]
    assert isinstance(store, PartitionLeases), "BUS_URL needs a store with leases"
    app[COMMANDS].consume(executor.on_remote_command)  # type: ignore[arg-type]
    members = RedisMembers.from_url(settings.bus_url)
    ownership = PartitionOwnership(
        executor, store, members, commands.own,  # type: ignore[attr-defined]
        lease_ttl_s=settings.lease_ttl_s,
    )  # fmt: skip
    books = app[BOOKS]
    assert isinstance(books, RedisBookChannel)
    quotes.on_update.append(books.offer)
    books.start_publishing()
    ticking = [
        asyncio.create_task(ownership.run(), name="partition-ownership"),
        asyncio.create_task(
            follow_book_interest(books.wanted, executor.owns, app[MARKET]), name="book-interest"
        ),
    ]
    yield
    for task in ticking:
        task.cancel()
    await asyncio.gather(*ticking, return_exceptions=True)
    await ownership.leave()  # hand every partition over now (SIGTERM)
    await executor.stop()
    await members.close()


def create_app(
    settings: Settings, *, role: str | None = None, read_timeout_s: float = READ_TIMEOUT_S
) -> web.Application:
    """The service for `role` (default: the ROLE setting).

    `read_timeout_s` bounds how long a client may take to send a request. Headers: aiohttp
    closes a connection that has not sent a whole request line and headers within its
    keep-alive timeout (counted from the connection or from the previous answer), so that
    timeout is `read_timeout_s`. Body: `read_body` answers 408 past it. Whatever is left of
    an unread body is drained for at most `read_timeout_s` too.
    """
    role = role or settings.role
    serves_api = role in ("all", "api")
    executes = role in ("all", "executor")
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[error_middleware, origin_middleware],
        handler_args={"keepalive_timeout": read_timeout_s, "lingering_time": read_timeout_s},
    )
    app[SETTINGS] = settings
    app[OWNER_ID] = executor_id()
    app[READ_TIMEOUT] = read_timeout_s
    app[LATEST_QUOTES] = LatestQuotes()
    app.add_routes(health.routes)
    setup_metrics(app)
    app.cleanup_ctx.append(_tracing_ctx)
    app.cleanup_ctx.append(_adapters_ctx)
    if executes:
        app.cleanup_ctx.append(_market_ctx)
    if serves_api:
        app[AUTH] = Authenticator(settings.api_tokens)
        app.add_routes(intake_http.routes)
        app.add_routes(account_http.routes)
        app.add_routes(ws.routes)
        app[BOOK_HISTORY] = BookHistory()
        app.add_routes(book_history_routes)
        app.add_routes(symbols.routes)
        setup_pages(app, settings.static_dir, settings.binance_ws_url)
        setup_openapi(app)
        app.on_shutdown.append(ws.close_all)
        app.cleanup_ctx.append(_push_ctx)
        app.cleanup_ctx.append(_intake_ctx)
    if executes:
        app.cleanup_ctx.append(_execution_ctx)
    return app
