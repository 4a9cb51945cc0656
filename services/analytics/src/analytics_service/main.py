"""The analytics service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from analytics_service.api import ROUTERS
from analytics_service.bootstrap import bootstrap
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import INDEXES
from bus.runtime import service_lifespan
from kit.app import create_app as create_kit_app


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    """The analytics service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or AnalyticsSettings()
    return create_kit_app(
        settings,
        title="analytics",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, bootstrap, indexes=INDEXES),
    )
