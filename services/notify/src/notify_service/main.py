"""The notify service's app: kit's factory, its routes, the shared lifespan plus the worker."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from bus.runtime import Background, service_lifespan
from kit.app import create_app as create_kit_app
from notify_service.api import ROUTERS
from notify_service.bootstrap import Deps, bootstrap
from notify_service.settings import NotifySettings
from notify_service.store import INDEXES


def delivery_worker(deps: Deps) -> dict[str, Background]:
    """The worker sends outside the handlers' transactions; it stops before the bus."""
    return {"worker": deps.worker}


def create_app(
    settings: NotifySettings | None = None,
    *,
    bootstrap_fn: Callable[[NotifySettings], Deps] | None = None,
) -> FastAPI:
    """The notify service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or NotifySettings()
    lifespan = service_lifespan(
        settings, bootstrap_fn or bootstrap, indexes=INDEXES, background=delivery_worker
    )
    return create_kit_app(settings, title="notify", routers=ROUTERS, lifespan=lifespan)
