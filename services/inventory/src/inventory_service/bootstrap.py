"""Wiring of the inventory service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from inventory_service.handlers import HANDLERS
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
    return Deps.wire(settings, HANDLERS, mongo=mongo, bus=bus)
