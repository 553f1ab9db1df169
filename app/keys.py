"""Typed keys for what the application object carries: the ports and the services.

Keys of the HTTP edge's own helpers (the authenticator, the read timeout, the metrics
registry) live beside those helpers in `app/http/`; nothing here imports the edge.
"""

from __future__ import annotations

from aiohttp import web

from app.execution.executor import Executor
from app.execution.interest import MarketInterest
from app.intake.service import IntakeService
from app.ports import CommandQueue, EventBus, ExchangeFilters, Limiter, MarketFeed, OrderStore
from app.push.hub import PushHub
from app.settings import Settings
from app.tasks import TaskSupervisor

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", OrderStore)
BUS = web.AppKey("bus", EventBus)
COMMANDS = web.AppKey("commands", CommandQueue)
LIMITER = web.AppKey("limiter", Limiter)
FEED = web.AppKey("feed", MarketFeed)
FILTERS = web.AppKey("exchange_filters", ExchangeFilters)
MARKET = web.AppKey("market", MarketInterest)
INTAKE = web.AppKey("intake", IntakeService)
EXECUTOR = web.AppKey("executor", Executor)
PUSH_HUB = web.AppKey("push_hub", PushHub)
TASKS = web.AppKey("tasks", TaskSupervisor)
# The cross-process book channel (with a Redis bus): its adapter is an optional dependency,
# so it is typed loosely here.
BOOKS = web.AppKey("books", object)
