"""Wiring of the user service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from kit.auth.signing import SigningKey
from user_service.handlers import HANDLERS
from user_service.keys import load_signing_key
from user_service.settings import UserSettings


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the user service's routes and handlers work with."""

    settings: UserSettings
    signing_key: SigningKey


def bootstrap(
    settings: UserSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    signing_key: SigningKey | None = None,
) -> Deps:
    """The user service's dependencies; `mongo`/`bus`/`signing_key` replace the real ones."""
    key = signing_key if signing_key is not None else load_signing_key(settings)
    return Deps.wire(settings, HANDLERS, mongo=mongo, bus=bus, signing_key=key)
