"""The inventory service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import service_lifespan
from inventory_service.api import ROUTERS
from inventory_service.bootstrap import bootstrap
from inventory_service.settings import InventorySettings
from inventory_service.store import INDEXES
from kit.app import create_app as create_kit_app


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    """The inventory service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or InventorySettings()
    return create_kit_app(
        settings,
        title="inventory",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, bootstrap, indexes=INDEXES),
    )
