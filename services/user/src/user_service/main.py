"""The user service's app: kit's factory, its routes, the lifespan of `bootstrap.py`."""

from __future__ import annotations

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from user_service.api import ROUTERS
from user_service.bootstrap import lifespan
from user_service.internal_api import internal
from user_service.settings import UserSettings


def create_app(settings: UserSettings | None = None) -> FastAPI:
    """The user service's FastAPI app (nothing connects until the lifespan starts)."""
    settings = settings or UserSettings()
    return create_kit_app(
        settings, title="user", routers=[*ROUTERS, internal], lifespan=lifespan(settings)
    )
