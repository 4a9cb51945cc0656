"""Wiring of the inventory service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus import Outbox
from bus.runtime import Bus, ServiceDeps
from inventory_service.handlers import handler_table
from inventory_service.settings import InventorySettings
from kit.transactions import TransactionBody, run_in_transaction


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the inventory service's routes and handlers work with."""

    settings: InventorySettings

    @property
    def outbox(self) -> Outbox:
        """The service's outbox, for writes outside a handler."""
        return Outbox(self.db)

    async def write[T](self, body: TransactionBody[T]) -> T:
        """Run an HTTP write (state and outbox rows) in one transaction, then wake the relay."""
        result = await run_in_transaction(self.mongo, body)
        notify = getattr(self.bus, "notify", None)
        if callable(notify):
            notify()
        return result

    def notify_relay(self) -> None:
        """Wake the relay after outbox rows were committed outside a handler."""
        notify = getattr(self.bus, "notify", None)
        if callable(notify):
            notify()


def bootstrap(
    settings: InventorySettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The inventory service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    handlers = handler_table(reservation_ttl_seconds=settings.reservation_ttl_seconds)
    return Deps.wire(settings, handlers, mongo=mongo, bus=bus)
