"""What the analytics service's commands work with (`Deps`), and how routes and handlers get it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from analytics_service.settings import AnalyticsSettings
from analytics_service.store import AnalyticsStore
from bus import HandlerContext
from bus.batch import BatchContext
from bus.runtime import ServiceDeps, app_deps


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the analytics service's routes, handlers and sweep work with."""

    settings: AnalyticsSettings

    @property
    def store(self) -> AnalyticsStore:
        return AnalyticsStore(self.db)


# Routes take `deps: DepsDep`; handlers get it as `ctx.deps` (a batch of events as `batch.deps`).
DepsDep = Annotated[Deps, Depends(app_deps(Deps))]
type Context = HandlerContext[Deps]
type Batch = BatchContext[Deps]
