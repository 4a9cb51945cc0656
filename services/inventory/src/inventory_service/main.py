"""The inventory service's app: kit's factory, its routes, the shared lifespan plus its own steps.

After the shared lifespan has connected Mongo and started the bus, the service seeds the demo
catalogue (dev only, unless `SHOP_SEED_CATALOG=0`) and starts the reservation sweeper; on stop the
sweeper ends before the bus does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import structlog
from fastapi import FastAPI
from pymongo.asynchronous.client_session import AsyncClientSession

from bus.runtime import Bus, service_lifespan
from contracts import Envelope
from inventory_service.api import ROUTERS
from inventory_service.bootstrap import Deps, bootstrap
from inventory_service.catalog import seed_products
from inventory_service.handlers import utcnow
from inventory_service.seed import demo_catalogue
from inventory_service.settings import InventorySettings
from inventory_service.store import INDEXES
from inventory_service.sweeper import ReservationSweeper
from kit.app import create_app as create_kit_app

log = structlog.get_logger("inventory.main")


async def seed_demo_catalogue(deps: Deps) -> int:
    """Insert the demo products that are missing, each announced by ProductCreated."""
    now = utcnow()

    async def body(session: AsyncClientSession) -> int:
        events = await seed_products(deps.db, session, demo_catalogue(), now)
        await deps.outbox.add(
            session,
            *(Envelope.wrap(e, correlation_id=e.product_id) for e in events),
        )
        return len(events)

    return await deps.write(body)


def inventory_lifespan(settings: InventorySettings, *, bus: Bus | None = None) -> Any:
    """The shared service lifespan, then seeding and the sweeper (stopped first on the way out)."""
    shared = service_lifespan(settings, partial(bootstrap, bus=bus), indexes=INDEXES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared(app):
            deps: Deps = app.state.deps
            if settings.seed_catalog and settings.env == "dev":
                added = await seed_demo_catalogue(deps)
                log.info("catalogue.seeded", added=added)
            sweeper = ReservationSweeper(
                deps.mongo,
                deps.db,
                interval=settings.sweep_interval_seconds,
                lease_seconds=settings.sweep_lease_seconds,
                notify=deps.bus.notify,
            )
            app.state.sweeper = sweeper
            sweeper.start()
            try:
                yield
            finally:
                await sweeper.stop()

    return lifespan


def create_app(settings: InventorySettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The inventory service's FastAPI app (nothing connects until the lifespan starts).

    `bus` replaces the real one in tests that need no broker.
    """
    settings = settings or InventorySettings()
    return create_kit_app(
        settings,
        title="inventory",
        routers=ROUTERS,
        lifespan=inventory_lifespan(settings, bus=bus),
    )
