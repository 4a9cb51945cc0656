"""The user service's app: kit's factory, its routes, the shared service lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from bus.runtime import service_lifespan
from kit.app import create_app as create_kit_app
from kit.auth.deps import use_static_keys
from user_service.api import ROUTERS
from user_service.bootstrap import Deps, bootstrap
from user_service.settings import UserSettings
from user_service.store import INDEXES


def trust_own_key(app: FastAPI, deps: Deps) -> None:
    """The service verifies its own tokens with the key it signs with, not over HTTP."""
    use_static_keys(app, deps.signing_key)


def create_app(settings: UserSettings | None = None) -> FastAPI:
    """The user service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or UserSettings()
    return create_kit_app(
        settings,
        title="user",
        routers=ROUTERS,
        lifespan=service_lifespan(settings, bootstrap, indexes=INDEXES, on_started=trust_own_key),
    )
