"""The /ws account channel's pushes: an owner's account after each committed change,
conflated per owner.

Every change to an account is committed with an order event (accepted, fill, end), and
events are published only after their commit: an event of an owner whose account someone
watches marks that owner changed. One read at a time per owner: a change that arrives
while a read is under way makes one more read after it, however many arrive, so a burst
of fills sends the newest state, and a state is never sent after a newer one (each read
starts after the previous one was sent, and sees every commit before it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)

ReadAccount = Callable[[str], Awaitable[dict[str, Any]]]
SendAccount = Callable[[str, str], None]  # (owner, the encoded message)


class AccountPusher:
    def __init__(self, read: ReadAccount, send: SendAccount) -> None:
        self._read = read
        self._send = send
        self._again: set[str] = set()  # changed while its read was under way
        self._reading: dict[str, asyncio.Task[None]] = {}
        self.reads = 0

    def changed(self, owner: str) -> None:
        if owner in self._reading:
            self._again.add(owner)
            return
        self._reading[owner] = asyncio.create_task(self._push(owner), name=f"account:{owner}")

    async def _push(self, owner: str) -> None:
        try:
            while True:
                self._again.discard(owner)
                try:
                    account = await self._read(owner)
                except Exception as exc:  # the next change reads it again
                    log.warning("account.read_failed", owner=owner, error=repr(exc))
                    return
                self.reads += 1
                self._send(owner, orjson.dumps({"type": "account", **account}).decode())
                if owner not in self._again:
                    return
        finally:
            del self._reading[owner]

    async def close_when_idle(self) -> None:
        """Wait until every owner's pushes are sent (tests, and a graceful stop)."""
        while self._reading:
            await asyncio.gather(*self._reading.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._reading.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
