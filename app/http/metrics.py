"""GET /metrics: Prometheus text format, from a registry owned by the application.

Most values are read from the components when scraped (a custom collector), so the hot
paths only bump plain integers; the HTTP latency histogram is observed per request.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.http.errors import Handler

METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
HTTP_LATENCY = web.AppKey("http_latency", Histogram)
HTTP_LATENCY_BY_ROUTE = web.AppKey("http_latency_by_route", dict[tuple[str, object], Histogram])


class ServiceCollector(Collector):
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        from app.keys import COMMANDS, EXECUTOR, FEED, FILTERS, INTAKE, PUSH_HUB

        executor = self._app.get(EXECUTOR)
        intake = self._app.get(INTAKE)
        feed = self._app.get(FEED)
        hub = self._app.get(PUSH_HUB)
        if executor is not None or intake is not None:
            reached = CounterMetricFamily(
                "executor_orders", "Orders that reached each status", labels=["status"]
            )
            counts = Counter(executor.status_counts if executor is not None else {})
            if intake is not None:
                counts["open"] += intake.accepted
            for status, count in sorted(counts.items()):
                reached.add_metric([status], count)
            yield reached
        if executor is not None:
            yield GaugeMetricFamily("executor_open_orders", "Orders open now", executor.open_count)
            totals = executor.worker_totals()
            yield CounterMetricFamily("executor_fills", "Fills committed", totals["fills"])
            updates = CounterMetricFamily(
                "executor_market_updates", "Upstream updates by outcome", labels=["outcome"]
            )
            updates.add_metric(["applied"], totals["applied"])
            updates.add_metric(["skipped"], totals["skipped"])
            yield updates
            yield CounterMetricFamily(
                "executor_worker_rebuilds", "Symbol workers rebuilt from the store after a failure",
                totals["rebuilds"],
            )  # fmt: skip
            commands = self._app.get(COMMANDS)
            yield GaugeMetricFamily(
                "executor_command_lag_seconds",
                "How long the last command handled had waited in the queue",
                commands.lag_s if commands is not None else 0.0,
            )
        if feed is not None:
            state = feed.state()
            yield GaugeMetricFamily(
                "executor_upstream_connected", "1 while an upstream socket is connected",
                1 if state["connected"] else 0,
            )  # fmt: skip
            yield CounterMetricFamily(
                "executor_upstream_reconnects", "Upstream reconnections", state["reconnects"]
            )
            yield CounterMetricFamily(
                "executor_upstream_frames", "Frames received", state["frames"]
            )
            yield CounterMetricFamily(
                "executor_upstream_malformed_frames", "Malformed frames skipped", state["malformed"]
            )
        filters = self._app.get(FILTERS)
        if filters is not None:
            state = filters.state()
            yield CounterMetricFamily(
                "executor_orders_unchecked",
                "Orders accepted without the exchange-filter checks: exchange info unreadable",
                state["unchecked_orders"],
            )
            yield GaugeMetricFamily(
                "executor_exchange_info_available",
                "1 while Binance's exchange info can be read (or the checks are off), else 0",
                0 if state["exchange_info"] == "unavailable" else 1,
            )
        if hub is not None:
            yield GaugeMetricFamily("executor_ws_clients", "Websocket clients", len(hub.clients))


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        if request.path != "/ws":  # a websocket's "latency" is its whole life
            _latency_of(request).observe(time.perf_counter() - started)


def _latency_of(request: web.Request) -> Histogram:
    """The route's histogram child; `labels()` looked up once per method and route."""
    children = request.app[HTTP_LATENCY_BY_ROUTE]
    key = (request.method, request.match_info.route)
    child = children.get(key)
    if child is None:
        if len(children) > 1024:  # unmatched routes come and go: never grow without bound
            children.clear()
        child = children[key] = request.app[HTTP_LATENCY].labels(
            request.method, _route_name(request)
        )
    return child


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_metrics(app: web.Application) -> None:
    registry = CollectorRegistry()
    app[METRICS_REGISTRY] = registry
    app[HTTP_LATENCY] = Histogram(
        "executor_http_request_duration_seconds",
        "HTTP request latency by route",
        ["method", "route"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )
    app[HTTP_LATENCY_BY_ROUTE] = {}
    registry.register(ServiceCollector(app))
    app.middlewares.append(latency_middleware)
    app.router.add_get("/metrics", metrics)
