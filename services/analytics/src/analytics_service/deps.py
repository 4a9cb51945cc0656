"""What the analytics service's commands work with (`Deps`), and how routes and handlers get it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from analytics_service.settings import AnalyticsSettings
from analytics_service.store import AnalyticsStore
from bus import HandlerContext
from bus.batch import BatchContext
from bus.runtime import ServiceDeps


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the analytics service's routes, handlers and sweep work with."""

    settings: AnalyticsSettings

    @property
    def store(self) -> AnalyticsStore:
        return AnalyticsStore(self.db)


def get_deps(request: Request) -> Deps:
    """The service's dependencies, put on `app.state` by the lifespan."""
    return cast(Deps, request.app.state.deps)


# Routes take `deps: DepsDep`; handlers get it as `ctx.deps` (a batch of events as `batch.deps`).
DepsDep = Annotated[Deps, Depends(get_deps)]
type Context = HandlerContext[Deps]
type Batch = BatchContext[Deps]
