"""Wiring of the payment service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from payment_service.handlers import HANDLERS
from payment_service.settings import PaymentSettings


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the payment service's routes and handlers work with."""

    settings: PaymentSettings


def bootstrap(
    settings: PaymentSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The payment service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    return Deps.wire(settings, HANDLERS, mongo=mongo, bus=bus)
