"""The user service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bus.runtime import service_lifespan
from kit.app import Lifespan
from kit.app import create_app as create_kit_app
from kit.auth.deps import use_static_keys
from user_service.api import ROUTERS
from user_service.bootstrap import Deps, bootstrap
from user_service.commands import ensure_bootstrap_accounts
from user_service.internal_api import internal
from user_service.settings import UserSettings
from user_service.store import INDEXES


def trust_own_key(app: FastAPI, deps: Deps) -> None:
    """The service verifies its own tokens with the keys it publishes, not over HTTP."""
    use_static_keys(app, *(deps.public_keys or (deps.signing_key,)))


def lifespan(settings: UserSettings) -> Lifespan:
    """The shared service lifespan, then the bootstrap accounts (Admin, Manager) once."""
    shared = service_lifespan(settings, bootstrap, indexes=INDEXES, on_started=trust_own_key)

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with shared(app):
            await ensure_bootstrap_accounts(app.state.deps)
            yield

    return run


def create_app(settings: UserSettings | None = None) -> FastAPI:
    """The user service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or UserSettings()
    return create_kit_app(
        settings, title="user", routers=[*ROUTERS, internal], lifespan=lifespan(settings)
    )
