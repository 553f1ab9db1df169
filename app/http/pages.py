"""GET / (the live page) and its static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web


def setup_pages(app: web.Application, static_dir: Path) -> None:
    index_html = static_dir / "index.html"

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index_html, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_static("/static", static_dir, follow_symlinks=False)
