"""The notify service's app: kit's factory, its routes, the shared lifespan plus the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bus.runtime import service_lifespan
from kit.app import create_app as create_kit_app
from notify_service.api import ROUTERS
from notify_service.bootstrap import Deps, bootstrap
from notify_service.settings import NotifySettings
from notify_service.store import INDEXES


def create_app(
    settings: NotifySettings | None = None,
    *,
    bootstrap_fn: Callable[[NotifySettings], Deps] | None = None,
) -> FastAPI:
    """The notify service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or NotifySettings()
    shared = service_lifespan(settings, bootstrap_fn or bootstrap, indexes=INDEXES)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shared(app):
            deps: Deps = app.state.deps
            # The worker sends outside the handlers' transactions; it stops before the bus.
            deps.worker.start()
            try:
                yield
            finally:
                await deps.worker.stop()

    return create_kit_app(settings, title="notify", routers=ROUTERS, lifespan=lifespan)
