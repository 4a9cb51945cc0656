"""The order service's app: kit's factory, its routes, its lifespan (`bootstrap.lifespan`: the
deadline sweeper beside the consumer, the orders-per-status metric read at scrape time)."""

from __future__ import annotations

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from order_service.api import ROUTERS
from order_service.bootstrap import lifespan
from order_service.settings import OrderSettings


def create_app(settings: OrderSettings | None = None) -> FastAPI:
    """The order service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or OrderSettings()
    return create_kit_app(settings, title="order", routers=ROUTERS, lifespan=lifespan(settings))
