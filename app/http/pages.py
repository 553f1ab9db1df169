"""GET / (the live page) and its static files.

The page's input patterns are the server's rules (app/rules.py), written into index.html
where it says `{{symbol_pattern}}` or `{{decimal_pattern}}`: one definition for both.
"""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from app.core import rules

PAGE_RULES = {"symbol_pattern": rules.SYMBOL_PATTERN, "decimal_pattern": rules.DECIMAL_PATTERN}


def render_index(static_dir: Path) -> str:
    page = (static_dir / "index.html").read_text(encoding="utf-8")
    for name, value in PAGE_RULES.items():
        page = page.replace("{{" + name + "}}", html.escape(value, quote=True))
    return page


def setup_pages(app: web.Application, static_dir: Path) -> None:
    index_html = render_index(static_dir).encode()

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            body=index_html,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    app.router.add_get("/", index)
    app.router.add_static("/static", static_dir, follow_symlinks=False)
