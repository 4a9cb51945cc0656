"""The order service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import service_lifespan
from kit.app import create_app as create_kit_app
from order_service import replicas, store
from order_service.api import ROUTERS
from order_service.bootstrap import bootstrap
from order_service.settings import OrderSettings


def create_app(settings: OrderSettings | None = None) -> FastAPI:
    """The order service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or OrderSettings()
    return create_kit_app(
        settings,
        title="order",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, bootstrap, indexes=[*store.INDEXES, *replicas.INDEXES]),
    )
