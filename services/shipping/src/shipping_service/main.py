"""The shipping service's app: kit's factory, its routes, its lifespan (bootstrap.py).

The auto-advance sweeper runs beside the consumer when `SHIPPING_AUTO_ADVANCE_SECONDS` is set.
"""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import Bus
from kit.app import create_app as create_kit_app
from shipping_service.api import ROUTERS
from shipping_service.bootstrap import lifespan
from shipping_service.settings import ShippingSettings


def create_app(settings: ShippingSettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The shipping service's FastAPI app (nothing connects until the lifespan starts).

    `bus` replaces the real one in tests that need no broker.
    """
    settings = settings or ShippingSettings()
    return create_kit_app(
        settings,
        title="shipping",
        routers=ROUTERS,
        lifespan=lifespan(settings, bus=bus),
    )
