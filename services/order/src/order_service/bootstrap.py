"""Wiring of the order service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from order_service.handlers import handler_table
from order_service.settings import OrderSettings


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the order service's routes and handlers work with."""

    settings: OrderSettings


def bootstrap(
    settings: OrderSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The order service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    return Deps.wire(settings, handler_table(settings.policy()), mongo=mongo, bus=bus)
