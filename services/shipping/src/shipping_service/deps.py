"""What the shipping service's commands work with, and how routes and handlers reach it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends

from bus import HandlerContext
from bus.runtime import ServiceDeps, app_deps
from shipping_service.carrier import Carrier
from shipping_service.settings import ShippingSettings
from shipping_service.store import ShippingStore


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """The shipping service's wiring (`bootstrap()`): settings, store, clock, bus, carrier."""

    settings: ShippingSettings
    carrier: Carrier

    @cached_property
    def store(self) -> ShippingStore:
        return ShippingStore(self.db)


DepsDep = Annotated[Deps, Depends(app_deps(Deps))]

# What a handler receives: `ctx.deps` is the service's `Deps`.
type Context = HandlerContext[Deps]
