"""What the inventory service's commands work with, and how routes and handlers reach it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends

from bus import HandlerContext
from bus.runtime import ServiceDeps, app_deps
from inventory_service.settings import InventorySettings
from inventory_service.store import InventoryStore


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """The inventory service's wiring (`bootstrap()`): settings, store, clock, bus."""

    settings: InventorySettings

    @cached_property
    def store(self) -> InventoryStore:
        return InventoryStore(self.db)


DepsDep = Annotated[Deps, Depends(app_deps(Deps))]

# What a handler receives: `ctx.deps` is the service's `Deps`.
type Context = HandlerContext[Deps]
