"""Wiring of the inventory service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from inventory_service.handlers import handler_table
from inventory_service.settings import InventorySettings


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the inventory service's routes and handlers work with."""

    settings: InventorySettings


def bootstrap(
    settings: InventorySettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The inventory service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    handlers = handler_table(reservation_ttl_seconds=settings.reservation_ttl_seconds)
    return Deps.wire(settings, handlers, mongo=mongo, bus=bus)
