"""Limits on what one request may take: body size and read time.

(Per-owner limits, request rate and open orders, are the Limiter port: `app/ports.py`.)"""

from __future__ import annotations

from aiohttp import web

MAX_BODY_BYTES = 64 * 1024
# How long a client may take to send a request's headers (from connecting, or from the end
# of its previous answer on a kept-alive connection) and, once they are in, its body.
READ_TIMEOUT_S = 10.0
READ_TIMEOUT = web.AppKey("read_timeout_s", float)
