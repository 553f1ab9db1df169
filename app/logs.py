"""structlog set-up: console renderer on a terminal, JSON lines in production.

JSON lines are what the service writes on every accepted order at the default level, so
that path is kept to what it must cost: one processor (level, timestamp, and the rare
context variables, stack or exception), orjson rendering bytes, and the lines of one
event-loop iteration written to stderr together, in one system call, when that iteration
ends (a line is never held longer: the loop runs its ready callbacks before it sleeps).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import IO, Any

import orjson
import structlog
from structlog import contextvars as structlog_contextvars
from structlog._log_levels import map_method_name

from app.clock import rfc3339

_STACK_AND_EXC = (
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
)


def _merge_contextvars(logger: Any, method_name: str, event: MutableMapping[str, Any]) -> None:
    # structlog keeps the variables it ever created in a module dict: while there is none
    # (nothing here binds any), there is nothing to merge and no context to copy.
    if getattr(structlog_contextvars, "_CONTEXT_VARS", True):
        structlog_contextvars.merge_contextvars(logger, method_name, event)  # type: ignore[arg-type]


def json_line(logger: Any, method_name: str, event: MutableMapping[str, Any]) -> bytes:
    """What the usual chain of processors does for a JSON line, as one call: context
    variables, `level`, an RFC 3339 UTC `timestamp` (as TimeStamper(fmt="iso", utc=True)
    writes it), a rendered stack or exception when asked for, then orjson."""
    _merge_contextvars(logger, method_name, event)
    event["level"] = map_method_name(method_name)  # as add_log_level: "warn" -> "warning"
    event["timestamp"] = rfc3339(time.time_ns() // 1000)
    if "stack_info" in event or "exc_info" in event:
        for processor in _STACK_AND_EXC:
            event = processor(logger, method_name, event)  # type: ignore[arg-type]
    return orjson.dumps(event, default=repr)


class BatchedLineWriter:
    """A structlog logger writing byte lines, those of one loop iteration in one write.

    On the event loop's thread a line is appended to a buffer, and the first line of an
    iteration schedules the flush (`call_soon`: after the callbacks already ready, before
    the loop waits for I/O again). Anywhere else (another thread, no loop running, the
    interpreter exiting) the buffer and the line are written at once.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._lines: list[bytes] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # a flush is scheduled there
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def msg(self, message: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or loop.is_closed():
            with self._lock:
                self._lines.append(message)
                self._write()
            return
        with self._lock:
            self._lines.append(message)
            if self._flush_on is not loop:  # (a loop closed with its flush pending: not it)
                self._flush_on = loop
                loop.call_soon(self.flush)

    log = debug = info = warn = warning = err = error = critical = exception = msg

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        self._flush_on = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        lines.append(b"")
        try:
            self._file.write(b"\n".join(lines))
            self._file.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to log
            pass


def configure_logging(log_format: str, level: str = "info") -> None:
    processors: list[structlog.types.Processor]
    logger_factory: Callable[..., Any]
    if log_format == "json":
        writer = BatchedLineWriter(sys.stderr.buffer)
        processors = [json_line]  # type: ignore[list-item]
        logger_factory = lambda *args: writer  # noqa: E731 (one writer for every logger)
    else:
        processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ]
        logger_factory = structlog.PrintLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
