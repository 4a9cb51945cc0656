"""The order service's app: kit's factory, its routes, the shared lifespan with the deadline
sweeper beside the consumer and the orders-per-status metric read at scrape time."""

from __future__ import annotations

from functools import partial

import httpx
from fastapi import FastAPI

from bus.runtime import Background, Bus, service_lifespan
from kit.app import create_app as create_kit_app
from kit.metrics import add_scrape_hook
from order_service import replicas, store
from order_service.api import ROUTERS
from order_service.bootstrap import Deps, bootstrap
from order_service.metrics import status_sampler
from order_service.settings import OrderSettings
from order_service.sweeper import DeadlineSweeper


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

    def sample_statuses(app: FastAPI, deps: Deps) -> None:
        add_scrape_hook(app, "orders", status_sampler(deps.db))

    def sweeper(deps: Deps) -> dict[str, Background]:
        return {
            "sweeper": DeadlineSweeper(
                deps.mongo,
                deps.db,
                interval=settings.sweep_interval_seconds,
                lease_seconds=settings.sweep_lease_seconds,
                notify=deps.bus.notify,
                documents=deps.documents(store.ORDERS),
                max_failures=settings.sweep_max_failures,
            )
        }

    return create_kit_app(
        settings,
        title="order",
        routers=ROUTERS,
        lifespan=service_lifespan(
            settings,
            partial(bootstrap, bus=bus, transport=transport),
            indexes=[*store.INDEXES, *replicas.INDEXES],
            on_started=sample_statuses,
            background=sweeper,
        ),
    )
