"""The inventory service's app: kit's factory, its routes, its lifespan (bootstrap.py).

After the shared lifespan has connected Mongo and started the bus, the service seeds the demo
catalogue (dev only, unless `SHOP_SEED_CATALOG=0`); the reservation sweeper runs beside the
consumer (the shared lifespan starts it after the seeding and stops it before the bus).
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from pymongo.asynchronous.client_session import AsyncClientSession

from bus.runtime import Bus
from contracts import Envelope
from inventory_service.api import ROUTERS
from inventory_service.bootstrap import lifespan
from inventory_service.commands import seed_products
from inventory_service.deps import Deps
from inventory_service.seed import demo_catalogue
from inventory_service.settings import InventorySettings
from kit.app import create_app as create_kit_app

log = structlog.get_logger("inventory.main")


async def seed_demo_catalogue(deps: Deps) -> int:
    """Insert the demo products that are missing, each announced by ProductCreated."""
    now = deps.clock()

    async def body(session: AsyncClientSession) -> int:
        events = await seed_products(deps.db, session, demo_catalogue(), now)
        await deps.outbox.add(
            session,
            *(Envelope.wrap(e, correlation_id=e.product_id) for e in events),
        )
        return len(events)

    return await deps.write(body)


def create_app(settings: InventorySettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The inventory service's FastAPI app (nothing connects until the lifespan starts).

    `bus` replaces the real one in tests that need no broker.
    """
    settings = settings or InventorySettings()

    async def seed(app: FastAPI, deps: Deps) -> None:
        if settings.seed_catalog and settings.env == "dev":
            added = await seed_demo_catalogue(deps)
            log.info("catalogue.seeded", added=added)

    return create_kit_app(
        settings,
        title="inventory",
        routers=ROUTERS,
        lifespan=lifespan(settings, bus=bus, on_started=seed),
    )
