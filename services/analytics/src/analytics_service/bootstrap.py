"""Wiring of the analytics service: real adapters by default, fakes when a test passes them;
its background loop (the win-back sweep) and the lifespan that runs it all."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from analytics_service import commands
from analytics_service.deps import Deps
from analytics_service.handlers import HANDLERS, record_events
from analytics_service.settings import AnalyticsSettings
from analytics_service.store import INDEXES
from bus.batch import Batching
from bus.runtime import Background, Bus, Lifespan, service_lifespan
from kit.background import PeriodicTask
from kit.clock import Clock, utcnow

__all__ = ["Deps", "background", "bootstrap", "lifespan"]


def bootstrap(
    settings: AnalyticsSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
) -> Deps:
    """The analytics service's dependencies; `mongo`/`bus`/`clock` replace the real ones.

    The real bus consumes in batches: `handlers.record_events` takes them (`bus.batch`).
    """
    batching = Batching(
        record_events, max_batch=settings.batch_max, max_wait=settings.batch_wait_seconds
    )
    return Deps.wire(
        settings, HANDLERS, mongo=mongo, bus=bus, batching=batching, clock=clock or utcnow
    )


def background(deps: Deps) -> dict[str, Background]:
    """Inactivity is no event: a periodic sweep notices it (`commands.grant_winbacks`)."""
    sweep = PeriodicTask(
        "analytics-winback",
        lambda: commands.grant_winbacks(deps, deps.clock()),
        deps.settings.winback_sweep_seconds,
    )
    return {"winback": sweep}


async def tidy_legacy(_: FastAPI, deps: Deps) -> None:
    """A database from before the audit entries moved onto the events' rows: move them; one
    from before the batch consumer: drop its inbox."""
    await deps.store.adopt_legacy_audit()
    await deps.store.drop_legacy_inbox()


def lifespan(settings: AnalyticsSettings) -> Lifespan:
    """The shared service lifespan, with the start-up tidying and the win-back sweep."""
    return service_lifespan(
        settings, bootstrap, indexes=INDEXES, on_started=tidy_legacy, background=background
    )
