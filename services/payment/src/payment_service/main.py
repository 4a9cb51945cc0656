"""The payment service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from functools import partial

import httpx
from fastapi import FastAPI

from bus.runtime import Bus, service_lifespan
from kit.app import create_app as create_kit_app
from payment_service.api import ROUTERS
from payment_service.bootstrap import Deps, bootstrap
from payment_service.provider import PaymentProvider
from payment_service.settings import PaymentSettings
from payment_service.store import INDEXES, drop_legacy_indexes


async def drop_legacy(_: FastAPI, deps: Deps) -> None:
    """A database an older version indexed: drop what is no longer declared."""
    await drop_legacy_indexes(deps.db)


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
    wiring = partial(bootstrap, bus=bus, provider=provider, user_transport=user_transport)
    return create_kit_app(
        settings,
        title="payment",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, wiring, indexes=INDEXES, on_started=drop_legacy),
    )
