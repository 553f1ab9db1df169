"""A message as a complete websocket text frame, built once for every client that gets it.

A server's frames are not masked (RFC 6455, 5.1) and /ws negotiates no compression, so
the bytes on the wire are the same for every client: the header and the payload are
put together once per event, and each client's socket gets those bytes as they are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_FIN_TEXT = 0x81  # final fragment, opcode 1 (text), no RSV bits (no compression)
_TWO_BYTES = struct.Struct("!BBH")
_EIGHT_BYTES = struct.Struct("!BBQ")


@dataclass(frozen=True, slots=True)
class Frame:
    text: str  # the JSON message
    wire: bytes  # the whole frame: header then the UTF-8 payload

    @classmethod
    def of(cls, payload: bytes) -> Frame:
        """The frame carrying `payload` (UTF-8 JSON, as orjson writes it)."""
        size = len(payload)
        if size < 126:
            header = bytes((_FIN_TEXT, size))
        elif size < 1 << 16:
            header = _TWO_BYTES.pack(_FIN_TEXT, 126, size)
        else:
            header = _EIGHT_BYTES.pack(_FIN_TEXT, 127, size)
        return cls(payload.decode(), header + payload)
