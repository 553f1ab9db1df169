"""GET / (the live page) and its static files."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

# The repository's static/ (an installed package finds it through STATIC_DIR).
STATIC_DIR = Path(os.environ.get("STATIC_DIR", Path(__file__).resolve().parents[2] / "static"))


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC_DIR, follow_symlinks=False)
