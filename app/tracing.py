"""OpenTelemetry tracing: one trace per order, off unless the TRACING setting says otherwise.

Off (the default), nothing of OpenTelemetry is imported and every helper returns at its
first line: `ENABLED` is a module-level flag that each helper checks before it builds
anything (no attributes, no context dicts), and `span()` hands back one shared no-op
context manager. The packages are needed only with tracing on (`pip install
'trade-executor[tracing]'`).

On (`console`, or `otlp` to `OTEL_EXPORTER_OTLP_ENDPOINT`), an order's trace is:

    POST /order/limit                   intake/http.py (server)
      intake.store_insert               the durable insert
      push.order (accepted)             the hub renders the event once, for every client
      intake.send_command               AddOrder, carrying the context (producer)
        execution.add_order             the symbol's worker takes it (consumer)
        execution.fill                  one per fill (seq, price, qty), until published
          execution.commit              the batch's store.apply: links to other orders
          execution.publish             the batch's events on the bus: links likewise
          push.order (fill, filled)
        execution.end                   cancelled or expired, then commit, publish, push

The context crosses queues and processes inside the messages (`AddOrder.trace`,
`OrderEvent.trace`) as a plain dict holding the W3C `traceparent` (and `tracestate`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from app.core.order import Order

ENABLED = False  # the only thing a hot path reads when tracing is off
MODES = ("off", "console", "otlp")

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_NOOP: AbstractContextManager[Any] = nullcontext()


class TracingUnavailable(RuntimeError):
    """TRACING asks for an exporter whose packages are not installed."""


# -- on and off ---------------------------------------------------------------------------


def configure(mode: str) -> None:
    """TRACING: `console` (spans to stdout), `otlp` (OTLP over HTTP to
    `OTEL_EXPORTER_OTLP_ENDPOINT`, which the exporter reads itself); `off` does nothing."""
    if mode not in MODES:
        raise ValueError(f"TRACING must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return
    try:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        if mode == "console":
            exporter: SpanExporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    except ImportError as exc:
        raise TracingUnavailable(
            f"TRACING={mode} needs OpenTelemetry: pip install 'trade-executor[tracing]' ({exc})"
        ) from exc
    _start(BatchSpanProcessor(exporter))


def export_to(exporter: SpanExporter) -> None:
    """Tests: every span goes to `exporter` as it ends (e.g. an InMemorySpanExporter)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    _start(SimpleSpanProcessor(exporter))


def _start(processor: SpanProcessor) -> None:
    global ENABLED, _provider, _tracer
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    shutdown()
    name = os.environ.get("OTEL_SERVICE_NAME") or "trade-executor"
    _provider = TracerProvider(resource=Resource.create({"service.name": name}))
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("app")
    ENABLED = True


def shutdown() -> None:
    """Stop tracing; the spans still queued are exported first."""
    global ENABLED, _provider, _tracer
    ENABLED = False
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


# -- spans ----------------------------------------------------------------------------------


def order_attributes(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "status": order.status.value,
    }


def span(
    name: str,
    order: Order | None = None,
    *,
    parent: Context | None = None,
    links: Sequence[Span] = (),
    kind: str = "internal",
) -> AbstractContextManager[Any]:
    """A span around a block, current inside it (its children nest under it); a shared
    no-op when tracing is off. `parent`: another context than the current one."""
    if not ENABLED:
        return _NOOP
    return _current_span(name, order, parent, links, kind)


@contextmanager
def _current_span(
    name: str, order: Order | None, parent: Context | None, links: Sequence[Span], kind: str
) -> Iterator[Span]:
    from opentelemetry.trace import Link, SpanKind

    assert _tracer is not None
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=SpanKind[kind.upper()],
        attributes=order_attributes(order) if order is not None else None,
        links=[Link(other.get_span_context()) for other in links],
    ) as current:
        yield current


def start(name: str, order: Order, parent: Context | None, kind: str = "internal") -> Span:
    """A span that outlives the block that starts it (the caller ends it); tracing is on."""
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    return _tracer.start_span(
        name, context=parent, kind=SpanKind[kind.upper()], attributes=order_attributes(order)
    )


def batch_span(name: str, spans: Sequence[Span], size: int) -> AbstractContextManager[Any]:
    """One span for work done for several orders at once (a commit, a publish of `size`
    changes or events): a child of the first traced order's span, linked to the other
    traced orders' spans. A no-op when no order in it is traced."""
    if not spans:
        return _NOOP
    return _batch_span(name, spans, size)


@contextmanager
def _batch_span(name: str, spans: Sequence[Span], size: int) -> Iterator[Span]:
    with _current_span(name, None, in_context(spans[0]), spans[1:], "internal") as current:
        current.set_attributes({"batch.size": size, "batch.traced_orders": len(spans)})
        yield current


def annotate(order: Order) -> None:
    """Add the order's attributes to the current span (nothing when tracing is off)."""
    if ENABLED:
        from opentelemetry.trace import get_current_span

        get_current_span().set_attributes(order_attributes(order))


def fail_all(spans: Sequence[Span], exc: BaseException) -> None:
    """Mark these spans failed (the batch they belong to was not committed or published)."""
    if not spans:
        return
    from opentelemetry.trace import Status, StatusCode

    for each in spans:
        each.record_exception(exc)
        each.set_status(Status(StatusCode.ERROR, repr(exc)))


def end_all(spans: Sequence[Span]) -> None:
    for each in spans:
        each.end()


# -- contexts in messages -------------------------------------------------------------------


def inject(of: Span | None = None) -> dict[str, str] | None:
    """The W3C context of `of` (default: the current span) as a plain dict for a message;
    None when tracing is off."""
    if not ENABLED:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=None if of is None else in_context(of))
    return carrier or None


def extract(carrier: dict[str, str] | None) -> Context | None:
    """The context a message carried; None when it carried none or tracing is off."""
    if not ENABLED or not carrier:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier)


def in_context(of: Span) -> Context:
    from opentelemetry.trace import set_span_in_context

    return set_span_in_context(of)
