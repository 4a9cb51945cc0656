"""Wiring of the inventory service: real adapters by default, fakes when a test passes them;
its background loop (the reservation sweeper) and its lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from bus.runtime import Background, Bus, Lifespan, service_lifespan
from inventory_service.deps import Deps
from inventory_service.handlers import HANDLERS
from inventory_service.settings import InventorySettings
from inventory_service.store import INDEXES
from inventory_service.sweeper import ReservationSweeper
from kit.clock import Clock, utcnow


def bootstrap(
    settings: InventorySettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
) -> Deps:
    """The inventory service's dependencies; `mongo`/`bus`/`clock` replace the real ones."""
    return Deps.wire(settings, HANDLERS, mongo=mongo, bus=bus, clock=clock or utcnow)


def background(deps: Deps) -> Mapping[str, Background]:
    """The loops beside the consumer: the reservation sweeper, on the service's clock."""
    settings = deps.settings
    return {
        "sweeper": ReservationSweeper(
            deps,
            interval=settings.sweep_interval_seconds,
            lease_seconds=settings.sweep_lease_seconds,
            max_failures=settings.sweep_max_failures,
        )
    }


def lifespan(
    settings: InventorySettings,
    *,
    bus: Bus | None = None,
    on_started: Callable[[FastAPI, Deps], Awaitable[None]] | None = None,
) -> Lifespan:
    """The shared service lifespan with the inventory's indexes and sweeper; `on_started` runs
    before the sweeper starts (main.py's demo seeding)."""

    def wire(settings: InventorySettings) -> Deps:
        return bootstrap(settings, bus=bus)

    return service_lifespan(
        settings, wire, indexes=INDEXES, on_started=on_started, background=background
    )
