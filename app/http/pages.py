"""GET / (the live page) and its static files.

The page's input patterns are the server's rules (app/rules.py), written into index.html
where it says `{{symbol_pattern}}` or `{{decimal_pattern}}`: one definition for both.
`{{market}}` is `live` when quotes come from Binance itself and `demo` otherwise (the
emulator of `python -m app demo`, or any other upstream), `{{market_url}}` the upstream.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from app.core import rules

PAGE_RULES = {"symbol_pattern": rules.SYMBOL_PATTERN, "decimal_pattern": rules.DECIMAL_PATTERN}


LIVE_HOSTS = ("binance.com", "binance.vision", "binance.us")


def market_kind(upstream_url: str) -> str:
    """`live` for Binance's own hosts, else `demo`."""
    host = (urlsplit(upstream_url).hostname or "").lower()
    live = any(host == name or host.endswith("." + name) for name in LIVE_HOSTS)
    return "live" if live else "demo"


def render_index(static_dir: Path, upstream_url: str = "") -> str:
    page = (static_dir / "index.html").read_text(encoding="utf-8")
    values = {**PAGE_RULES, "market": market_kind(upstream_url), "market_url": upstream_url}
    for name, value in values.items():
        page = page.replace("{{" + name + "}}", html.escape(value, quote=True))
    return page


def setup_pages(app: web.Application, static_dir: Path, upstream_url: str = "") -> None:
    index_html = render_index(static_dir, upstream_url).encode()

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            body=index_html,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    app.router.add_get("/", index)
    app.router.add_static("/static", static_dir, follow_symlinks=False)
