"""The analytics service's app: kit's factory, its routes, the shared lifespan plus the sweep."""

from __future__ import annotations

from fastapi import FastAPI

from analytics_service.api import ROUTERS
from analytics_service.bootstrap import Deps, bootstrap
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import INDEXES
from bus.runtime import Background, service_lifespan
from kit.app import create_app as create_kit_app


def winback(deps: Deps) -> dict[str, Background]:
    """Inactivity is no event: a periodic sweep notices it."""
    return {"winback": deps.winback}


async def adopt_legacy_audit(_: FastAPI, deps: Deps) -> None:
    """A database from before the audit entries moved onto the events' rows: move them."""
    await deps.store.adopt_legacy_audit()


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    """The analytics service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or AnalyticsSettings()
    lifespan = service_lifespan(
        settings,
        bootstrap,
        indexes=INDEXES,
        on_started=adopt_legacy_audit,
        background=winback,
    )
    return create_kit_app(settings, title="analytics", routers=ROUTERS, lifespan=lifespan)
