"""The one owner of the service's long-running background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class TaskSupervisor:
    """Creates named tasks, logs any that die, and cancels what is left on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._endless: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str, endless: bool = False
    ) -> asyncio.Task[Any]:
        """Start a task. `endless` ones never finish by themselves: close cancels them."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        if endless:
            self._endless.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._endless.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task.crashed", task=task.get_name(), exc_info=task.exception())

    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` for tasks to end by themselves, then cancel the rest."""
        for task in self._endless:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
