"""Typed keys for everything the application object carries."""

from __future__ import annotations

from aiohttp import web

from app.bus import InProcessBus
from app.feed.binance import BinanceFeed
from app.http.auth import Authenticator
from app.http.limits import RateLimiter
from app.market import MarketInterest
from app.push.hub import PushHub
from app.service.orders import OrderService
from app.settings import Settings
from app.store.base import OrderStore
from app.tasks import TaskSupervisor

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", OrderStore)
BUS = web.AppKey("bus", InProcessBus)
FEED = web.AppKey("feed", BinanceFeed)
MARKET = web.AppKey("market", MarketInterest)
SERVICE = web.AppKey("service", OrderService)
TASKS = web.AppKey("tasks", TaskSupervisor)
AUTH = web.AppKey("auth", Authenticator)
PUSH_HUB = web.AppKey("push_hub", PushHub)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
