"""Wiring of the user service: real adapters by default, fakes when a test passes them; the
lifespan that runs it (the shared service lifespan, then the bootstrap accounts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from bus.runtime import Bus, service_lifespan
from kit.app import Lifespan
from kit.auth.deps import use_static_keys
from kit.auth.signing import SigningKey
from kit.clock import Clock, utcnow
from user_service.commands import ensure_bootstrap_accounts
from user_service.deps import Deps
from user_service.handlers import HANDLERS
from user_service.keys import load_previous_keys, load_signing_key
from user_service.passwords import Passwords
from user_service.settings import UserSettings
from user_service.store import INDEXES

__all__ = ["Deps", "bootstrap", "lifespan"]


def bootstrap(
    settings: UserSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
    signing_key: SigningKey | None = None,
) -> Deps:
    """The user service's dependencies; `mongo`/`bus`/`clock`/`signing_key` replace the real
    ones."""
    key = signing_key if signing_key is not None else load_signing_key(settings)
    return Deps.wire(
        settings,
        HANDLERS,
        mongo=mongo,
        bus=bus,
        clock=clock or utcnow,
        signing_key=key,
        public_keys=(key, *load_previous_keys(settings)),
        passwords=Passwords.from_settings(settings),
    )


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
