"""What the order service's commands work with (`Deps`), and how routes and handlers get it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

import httpx
from fastapi import Depends

from bus import HandlerContext
from bus.runtime import ServiceDeps, app_deps
from order_service.domain import Policy
from order_service.precheck import StockChecker, UserDirectory
from order_service.settings import OrderSettings
from order_service.store import OrderStore


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """Settings, the store, the clock, the saga's policy and the synchronous reads."""

    settings: OrderSettings
    # The saga's windows and threshold, read from the settings once (`OrderSettings.policy`).
    policy: Policy
    http: httpx.AsyncClient
    users: UserDirectory
    stock: StockChecker

    @cached_property
    def store(self) -> OrderStore:
        return OrderStore(self.db)

    async def close(self) -> None:
        """Close the pre-order check's HTTP client."""
        await self.http.aclose()


DepsDep = Annotated[Deps, Depends(app_deps(Deps))]

# What a handler receives: `ctx.deps` is the service's `Deps`.
type Context = HandlerContext[Deps]
