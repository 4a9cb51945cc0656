"""The payment service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import service_lifespan
from kit.app import create_app as create_kit_app
from payment_service.api import ROUTERS
from payment_service.bootstrap import bootstrap
from payment_service.settings import PaymentSettings
from payment_service.store import INDEXES


def create_app(settings: PaymentSettings | None = None) -> FastAPI:
    """The payment service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or PaymentSettings()
    return create_kit_app(
        settings,
        title="payment",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, bootstrap, indexes=INDEXES),
    )
