"""The inventory service's app: kit's factory, its routes, its lifespan (bootstrap.py).

The reservation sweeper runs beside the consumer (bootstrap's lifespan). The demo catalogue of
local mode is not the service's: `make run` seeds it (`devkit.seed_catalogue`).
"""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import Bus
from inventory_service.api import ROUTERS
from inventory_service.bootstrap import lifespan
from inventory_service.settings import InventorySettings
from kit.app import create_app as create_kit_app


def create_app(settings: InventorySettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The inventory service's FastAPI app (nothing connects until the lifespan starts).

    `bus` replaces the real one in tests that need no broker.
    """
    settings = settings or InventorySettings()
    return create_kit_app(
        settings,
        title="inventory",
        routers=ROUTERS,
        lifespan=lifespan(settings, bus=bus),
    )
