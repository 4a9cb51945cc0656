"""What the notify service's commands work with, and how routes and handlers reach it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from bus import HandlerContext
from bus.runtime import ServiceDeps, app_deps
from notify_service.channels import Sender
from notify_service.delivery import DeliveryWorker
from notify_service.settings import NotifySettings
from notify_service.store import NotifyStore


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """The notify service's wiring: settings, store, clock, the channels and the worker.

    Handlers read it as `ctx.deps`: links point at `settings.public_base_url`, profile nudges
    wait `settings.nudge_hold_seconds`, and the rows they write are born leased to `worker` and
    handed to it once committed.
    """

    settings: NotifySettings
    senders: Mapping[str, Sender]
    # This process's delivery worker; `bootstrap` builds it once the bus is wired (it sends
    # through the bus's relay), before anything runs.
    worker: DeliveryWorker = field(init=False)

    @property
    def store(self) -> NotifyStore:
        return NotifyStore(self.db)


DepsDep = Annotated[Deps, Depends(app_deps(Deps))]

type Context = HandlerContext[Deps]
