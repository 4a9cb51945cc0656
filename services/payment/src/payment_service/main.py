"""The payment service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from bus.runtime import Bus
from kit.app import create_app as create_kit_app
from payment_service.api import ROUTERS
from payment_service.bootstrap import lifespan
from payment_service.provider import PaymentProvider
from payment_service.settings import PaymentSettings


def create_app(
    settings: PaymentSettings | None = None,
    *,
    bus: Bus | None = None,
    provider: PaymentProvider | None = None,
    user_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The payment service's FastAPI app (nothing connects until the lifespan starts).

    `bus`, `provider` and `user_transport` replace the real ones in tests.
    """
    settings = settings or PaymentSettings()
    return create_kit_app(
        settings,
        title="payment",
        routers=ROUTERS,
        lifespan=lifespan(settings, bus=bus, provider=provider, user_transport=user_transport),
    )
