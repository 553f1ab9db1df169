"""K `/ws` clients on channel `orders` in one process, as lean as a client can be, for
bench/push.py (several of these run at once, so no one client process is what is measured).

Each client is a raw asyncio protocol: the arrival time is taken in `data_received`, the
moment the bytes reach this process, and JSON is parsed only after the run. Only the
websocket framing is read live (to answer pings and to count events).

    python bench/push_clients.py <host> <port> <clients> <fills> <output.json>

stdout: `ready` once every client is subscribed; `<event> <n>` when every client of this
process has had its n-th `accepted` / `fill` / `filled` event; at the end `written`, once
<output.json> holds a list of latencies (ms): for each client and fill, arrival time minus the fill's `ts`
(the time the service received the upstream frame; the same machine, the same clock).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import cast

import orjson

EVENTS = {b'"event":"accepted"': "accepted", b'"event":"fill"': "fill", b'"event":"filled"': "filled"}  # fmt: skip
PING, PONG, CLOSE, TEXT = 0x9, 0xA, 0x8, 0x1


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask; a zero mask leaves the payload as it is)."""
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + b"\0\0\0\0" + payload


class Tally:
    """How many clients of this process have had their n-th event of each kind."""

    def __init__(self, clients: int, fills: int, say: Callable[[str], None]) -> None:
        self.clients = clients
        self.fills = fills
        self.say = say
        self.counts: Counter[tuple[str, int]] = Counter()
        self.all_done = asyncio.get_running_loop().create_future()

    def saw(self, kind: str, n: int) -> None:
        key = (kind, n)
        self.counts[key] += 1
        if self.counts[key] == self.clients:
            del self.counts[key]
            self.say(f"{kind} {n}")
            if kind == "filled" and n == self.fills and not self.all_done.done():
                self.all_done.set_result(None)


class Client(asyncio.Protocol):
    def __init__(self, tally: Tally, request: bytes) -> None:
        self.tally = tally
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.subscribed = asyncio.get_running_loop().create_future()
        self.seen: Counter[str] = Counter()
        self.fills: list[tuple[float, bytes]] = []  # (arrival, payload), parsed after the run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is no subclass of asyncio.Transport, but it is one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        buffer = self.buffer + data
        if not self.upgraded:
            head, found, rest = buffer.partition(b"\r\n\r\n")
            if not found:
                self.buffer = buffer
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                raise ConnectionError(head.decode(errors="replace"))
            self.upgraded, buffer = True, rest
        start = 0
        while len(buffer) - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            length, at = second & 0x7F, start + 2
            if length == 126:
                if len(buffer) - at < 2:
                    break
                (length,), at = struct.unpack_from("!H", buffer, at), at + 2
            elif length == 127:
                if len(buffer) - at < 8:
                    break
                (length,), at = struct.unpack_from("!Q", buffer, at), at + 8
            if len(buffer) - at < length:
                break
            self.frame(first & 0x0F, buffer[at : at + length], arrived)
            start = at + length
        self.buffer = buffer[start:]

    def frame(self, opcode: int, payload: bytes, arrived: float) -> None:
        if opcode == TEXT:
            if not self.subscribed.done():
                self.subscribed.set_result(None)
                return
            for marker, kind in EVENTS.items():
                if marker in payload:
                    self.seen[kind] += 1
                    if kind == "fill":
                        self.fills.append((arrived, payload))
                    self.tally.saw(kind, self.seen[kind])
                    return
        elif opcode == PING and self.transport is not None:
            self.transport.write(_masked(PONG, payload))
        elif opcode == CLOSE and not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"closed: {payload!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"lost: {exc!r}"))


def _same(client: Client) -> Client:
    return client


def _write(output: str, latencies: list[float]) -> None:
    Path(output).write_bytes(orjson.dumps(latencies))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_clients(
    host: str, port: int, clients: int, fills: int, say: Callable[[str], None]
) -> list[float]:
    """Connect and subscribe the clients, say `ready`, and return the latencies (ms) once
    every client has had `fills` fills and the orders' ends."""
    loop = asyncio.get_running_loop()
    tally = Tally(clients, fills, say)
    connected: list[Client] = []
    for _ in range(clients):
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?channel=orders HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        client = Client(tally, request)
        await loop.create_connection(partial(_same, client), host, port)
        await asyncio.wait_for(client.subscribed, 30)
        connected.append(client)
    say("ready")
    await asyncio.wait_for(tally.all_done, 600)
    latencies = [
        (arrived - _epoch(orjson.loads(payload)["fill"]["ts"])) * 1000
        for client in connected
        for arrived, payload in client.fills
    ]
    for client in connected:
        if client.transport is not None:
            client.transport.abort()
    return latencies


async def main(host: str, port: int, clients: int, fills: int, output: str) -> None:
    _write(output, await run_clients(host, port, clients, fills, say))
    say("written")


if __name__ == "__main__":
    from app.__main__ import install_uvloop

    install_uvloop(wanted=True)
    asyncio.run(
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    )
