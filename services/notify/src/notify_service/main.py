"""The notify service's app: kit's factory, its routes, its lifespan (with the worker)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from notify_service.api import ROUTERS
from notify_service.bootstrap import bootstrap, lifespan
from notify_service.deps import Deps
from notify_service.settings import NotifySettings


def create_app(
    settings: NotifySettings | None = None,
    *,
    bootstrap_fn: Callable[[NotifySettings], Deps] | None = None,
) -> FastAPI:
    """The notify service's FastAPI app (nothing connects until the lifespan starts);
    `bootstrap_fn` wires test adapters (a client with a listener, fake senders)."""
    settings = settings or NotifySettings()
    return create_kit_app(
        settings,
        title="notify",
        routers=ROUTERS,
        lifespan=lifespan(settings, bootstrap_fn or bootstrap),
    )
