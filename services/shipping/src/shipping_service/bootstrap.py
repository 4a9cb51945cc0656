"""Wiring of the shipping service: real adapters by default, fakes when a test passes them;
its background loop (the auto-advance sweeper, only when `auto_advance_seconds` is set) and its
lifespan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Background, Bus, Lifespan, service_lifespan
from kit.clock import Clock, utcnow
from shipping_service.carrier import Carrier, SandboxCarrier
from shipping_service.deps import Deps
from shipping_service.handlers import HANDLERS
from shipping_service.settings import ShippingSettings
from shipping_service.store import INDEXES
from shipping_service.sweeper import AutoAdvance


def bootstrap(
    settings: ShippingSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
    carrier: Carrier | None = None,
) -> Deps:
    """The shipping service's dependencies; `mongo`/`bus`/`clock`/`carrier` replace the real
    ones (the sandbox carrier is the only carrier this project has)."""
    return Deps.wire(
        settings,
        HANDLERS,
        mongo=mongo,
        bus=bus,
        clock=clock or utcnow,
        carrier=carrier or SandboxCarrier(),
    )


def background(deps: Deps) -> Mapping[str, Background]:
    """The loops beside the consumer: the auto-advance sweeper when it is switched on."""
    settings = deps.settings
    if settings.auto_advance_seconds is None:
        return {}
    return {
        "auto_advance": AutoAdvance(
            deps,
            interval=settings.sweep_interval_seconds,
            lease_seconds=settings.sweep_lease_seconds,
            max_failures=settings.sweep_max_failures,
        )
    }


def lifespan(settings: ShippingSettings, *, bus: Bus | None = None) -> Lifespan:
    """The shared service lifespan with the shipping indexes and the auto-advance sweeper."""

    def wire(settings: ShippingSettings) -> Deps:
        return bootstrap(settings, bus=bus)

    return service_lifespan(settings, wire, indexes=INDEXES, background=background)
