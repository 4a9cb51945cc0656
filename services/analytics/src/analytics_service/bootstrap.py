"""Wiring of the analytics service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from analytics_service.handlers import HANDLERS, record_events
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import AnalyticsStore
from analytics_service.winback import WinbackSweeper
from bus.batch import Batching
from bus.runtime import Bus, ServiceDeps


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the analytics service's routes and handlers work with."""

    settings: AnalyticsSettings
    store: AnalyticsStore
    winback: WinbackSweeper


def bootstrap(
    settings: AnalyticsSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
) -> Deps:
    """The analytics service's dependencies; `mongo`/`bus` replace the real ones in tests."""
    batching = Batching(
        record_events, max_batch=settings.batch_max, max_wait=settings.batch_wait_seconds
    )
    base = ServiceDeps.wire(settings, HANDLERS, mongo=mongo, bus=bus, batching=batching)
    store = AnalyticsStore(base.db)
    winback = WinbackSweeper(
        base.mongo,
        store,
        base.outbox,
        inactive_for=timedelta(days=settings.winback_after_days),
        interval=settings.winback_sweep_seconds,
        on_committed=base.bus.notify,
    )
    return Deps(
        settings=settings,
        mongo=base.mongo,
        db=base.db,
        bus=base.bus,
        store=store,
        winback=winback,
    )
