"""The notify service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import service_lifespan
from kit.app import create_app as create_kit_app
from notify_service.api import ROUTERS
from notify_service.bootstrap import bootstrap
from notify_service.settings import NotifySettings
from notify_service.store import INDEXES


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    """The notify service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or NotifySettings()
    return create_kit_app(
        settings,
        title="notify",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, bootstrap, indexes=INDEXES),
    )
