"""Wiring of the user service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from service_runtime import Bus, ServiceDeps

from user_service.handlers import HANDLERS
from user_service.settings import UserSettings


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the user service's routes and handlers work with."""

    settings: UserSettings


def bootstrap(
    settings: UserSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The user service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    return Deps.wire(settings, HANDLERS, mongo=mongo, bus=bus)
