"""Wiring of the analytics service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from analytics_service.handlers import BINDINGS, HANDLERS
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import AnalyticsStore
from bus.runtime import Bus, ServiceDeps


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the analytics service's routes and handlers work with."""

    settings: AnalyticsSettings
    store: AnalyticsStore


def bootstrap(
    settings: AnalyticsSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The analytics service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    base = ServiceDeps.wire(settings, HANDLERS, mongo=mongo, bus=bus, extra_bindings=BINDINGS)
    return Deps(
        settings=settings,
        mongo=base.mongo,
        db=base.db,
        bus=base.bus,
        store=AnalyticsStore(base.db),
    )
