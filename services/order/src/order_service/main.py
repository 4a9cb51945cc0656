"""The order service's app: kit's factory, its routes, the shared lifespan plus its own steps.

After the shared lifespan has connected Mongo and started the bus, the deadline sweeper starts;
on the way out it stops first, then the HTTP client of the pre-order check is closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
from fastapi import FastAPI

from bus.runtime import Bus, service_lifespan
from kit.app import create_app as create_kit_app
from kit.metrics import add_scrape_hook
from order_service import replicas, store
from order_service.api import ROUTERS
from order_service.bootstrap import Deps, bootstrap
from order_service.metrics import status_sampler
from order_service.settings import OrderSettings
from order_service.sweeper import DeadlineSweeper


def order_lifespan(
    settings: OrderSettings,
    *,
    bus: Bus | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Any:
    """The shared service lifespan, then the deadline sweeper (stopped first on the way out)."""
    shared = service_lifespan(
        settings,
        partial(bootstrap, bus=bus, transport=transport),
        indexes=[*store.INDEXES, *replicas.INDEXES],
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared(app):
            deps: Deps = app.state.deps
            sweeper = DeadlineSweeper(
                deps.mongo,
                deps.db,
                interval=settings.sweep_interval_seconds,
                lease_seconds=settings.sweep_lease_seconds,
                notify=deps.bus.notify,
            )
            app.state.sweeper = sweeper
            sweeper.start()
            add_scrape_hook(app, "orders", status_sampler(deps.db))
            try:
                yield
            finally:
                await sweeper.stop()
                await deps.http.aclose()

    return lifespan


def create_app(
    settings: OrderSettings | None = None,
    *,
    bus: Bus | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The order service's FastAPI app (nothing connects until the lifespan starts).

    `bus` and `transport` (for the user and inventory reads) replace the real ones in tests.
    """
    settings = settings or OrderSettings()
    return create_kit_app(
        settings,
        title="order",
        routers=ROUTERS,
        lifespan=order_lifespan(settings, bus=bus, transport=transport),
    )
