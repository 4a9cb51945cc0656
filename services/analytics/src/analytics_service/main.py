"""The analytics service's app: kit's factory, its routes, the lifespan of `bootstrap.py`."""

from __future__ import annotations

from fastapi import FastAPI

from analytics_service.api import ROUTERS
from analytics_service.bootstrap import lifespan
from analytics_service.settings import AnalyticsSettings
from kit.app import create_app as create_kit_app


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    """The analytics service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or AnalyticsSettings()
    return create_kit_app(settings, title="analytics", routers=ROUTERS, lifespan=lifespan(settings))
