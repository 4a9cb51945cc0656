"""Wiring of the notify service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from notify_service.handlers import HANDLERS
from notify_service.settings import NotifySettings


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the notify service's routes and handlers work with."""

    settings: NotifySettings


def bootstrap(
    settings: NotifySettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The notify service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    return Deps.wire(settings, HANDLERS, mongo=mongo, bus=bus)
