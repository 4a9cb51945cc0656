"""What the inventory service's commands work with, and how routes and handlers reach it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, cast

from fastapi import Depends, Request

from bus import HandlerContext
from bus.runtime import ServiceDeps
from inventory_service.settings import InventorySettings
from inventory_service.store import InventoryStore


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """The inventory service's wiring (`bootstrap()`): settings, store, clock, bus."""

    settings: InventorySettings

    @cached_property
    def store(self) -> InventoryStore:
        return InventoryStore(self.db)


def get_deps(request: Request) -> Deps:
    """The service's dependencies, put on `app.state` by the lifespan."""
    return cast(Deps, request.app.state.deps)


DepsDep = Annotated[Deps, Depends(get_deps)]

# What a handler receives: `ctx.deps` is the service's `Deps`.
type Context = HandlerContext[Deps]
