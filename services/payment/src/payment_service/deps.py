"""What the payment service's commands work with: `Deps`, and how routes and handlers reach it.

Routes take `DepsDep`; handlers get the same object as `ctx.deps` (`Context`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from bus import HandlerContext
from bus.runtime import ServiceDeps, app_deps
from payment_service.inflight import InFlight
from payment_service.provider import PaymentProvider
from payment_service.provider_calls import RetryPolicy
from payment_service.settings import PaymentSettings
from payment_service.store import PaymentStore
from payment_service.users import UserDirectory


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """The payment service's wiring: settings, store, clock, the processor, the user directory."""

    settings: PaymentSettings
    provider: PaymentProvider
    users: UserDirectory
    # Uncommitted runs of deliveries (inflight.py): in process, for the life of the service.
    inflight: InFlight = field(default_factory=InFlight)

    @property
    def store(self) -> PaymentStore:
        return PaymentStore(self.db)

    @property
    def retry(self) -> RetryPolicy:
        """The provider calls one request may make and the backoff between them."""
        s = self.settings
        return RetryPolicy(s.max_attempts, s.backoff_base_seconds, s.backoff_cap_seconds)

    async def close(self) -> None:
        """Close the user directory's pooled HTTP client."""
        await self.users.aclose()


DepsDep = Annotated[Deps, Depends(app_deps(Deps))]

type Context = HandlerContext[Deps]
