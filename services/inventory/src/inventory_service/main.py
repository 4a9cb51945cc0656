"""The inventory service's app: kit's factory, its routes, the shared lifespan plus its sweeper.

The reservation sweeper runs beside the consumer (the shared lifespan starts it once the bus
runs and stops it before the bus). The demo catalogue of local mode is not the service's: `make
run` seeds it (`devkit.seed_catalogue`).
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from bus.runtime import Background, Bus, service_lifespan
from inventory_service.api import ROUTERS
from inventory_service.bootstrap import Deps, bootstrap
from inventory_service.settings import InventorySettings
from inventory_service.store import INDEXES
from inventory_service.sweeper import ReservationSweeper
from kit.app import create_app as create_kit_app


def create_app(settings: InventorySettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The inventory service's FastAPI app (nothing connects until the lifespan starts).

    `bus` replaces the real one in tests that need no broker.
    """
    settings = settings or InventorySettings()

    def sweeper(deps: Deps) -> dict[str, Background]:
        return {
            "sweeper": ReservationSweeper(
                deps.mongo,
                deps.db,
                interval=settings.sweep_interval_seconds,
                lease_seconds=settings.sweep_lease_seconds,
                notify=deps.bus.notify,
                max_failures=settings.sweep_max_failures,
            )
        }

    return create_kit_app(
        settings,
        title="inventory",
        routers=ROUTERS,
        lifespan=service_lifespan(
            settings,
            partial(bootstrap, bus=bus),
            indexes=INDEXES,
            background=sweeper,
        ),
    )
