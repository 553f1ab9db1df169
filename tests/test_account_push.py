"""The ws account channel's pushes are conflated per owner and never go back in time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.push.accounts import AccountPusher


class Accounts:
    """Each owner's account is a version number that commits raise; a read may be held."""

    def __init__(self) -> None:
        self.version: dict[str, int] = {}
        self.reads: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.reading = asyncio.Event()
        self.fail_next = False

    async def read(self, owner: str) -> dict[str, Any]:
        self.reads.append(owner)
        seen = self.version.get(owner, 0)  # the read's snapshot: taken as it starts
        self.reading.set()
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database gone")
        return {"balances": [{"asset": "V", "free": str(seen), "locked": "0"}], "positions": []}


def versions(sent: list[tuple[str, str]], owner: str) -> list[int]:
    return [
        int(json.loads(message)["balances"][0]["free"]) for who, message in sent if who == owner
    ]


async def test_a_burst_of_changes_sends_the_newest_state_after_one_more_read() -> None:
    accounts, sent = Accounts(), []
    pusher = AccountPusher(accounts.read, lambda owner, message: sent.append((owner, message)))
    accounts.gate.clear()
    accounts.version["alice"] = 1
    pusher.changed("alice")
    await accounts.reading.wait()  # the first read has its snapshot (version 1)
    for version in range(2, 50):  # fills commit while it is under way
        accounts.version["alice"] = version
        pusher.changed("alice")
    accounts.gate.set()
    await pusher.close_when_idle()
    assert accounts.reads == ["alice", "alice"]  # 49 changes, two reads
    assert versions(sent, "alice") == [1, 49]  # the newest last, never an older after it
    first = json.loads(sent[0][1])
    assert first["type"] == "account" and list(first) == ["type", "balances", "positions"]


async def test_owners_are_read_apart_and_a_failed_read_is_retried_on_the_next_change() -> None:
    accounts, sent = Accounts(), []
    pusher = AccountPusher(accounts.read, lambda owner, message: sent.append((owner, message)))
    accounts.version.update(alice=3, bob=7)
    accounts.fail_next = True
    pusher.changed("alice")
    await pusher.close_when_idle()
    assert sent == []  # the read failed: nothing sent, nothing stuck
    pusher.changed("alice")
    pusher.changed("bob")
    await pusher.close_when_idle()
    assert versions(sent, "alice") == [3] and versions(sent, "bob") == [7]
