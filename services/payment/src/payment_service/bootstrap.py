"""Wiring of the payment service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from payment_service.handlers import PaymentEnv, handler_table
from payment_service.provider import PaymentProvider
from payment_service.settings import PaymentSettings
from payment_service.store import PAYMENTS
from payment_service.users import UserDirectory


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the payment service's routes and handlers work with."""

    settings: PaymentSettings
    provider: PaymentProvider
    users: UserDirectory

    async def close(self) -> None:
        """Close the user directory's pooled HTTP client."""
        await self.users.aclose()


def bootstrap(
    settings: PaymentSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    provider: PaymentProvider | None = None,
    user_transport: httpx.AsyncBaseTransport | None = None,
) -> Deps:
    """The payment service's dependencies; tests may pass Mongo, bus, provider, user transport."""
    env = PaymentEnv.from_settings(settings, provider=provider, user_transport=user_transport)
    return Deps.wire(
        settings,
        handler_table(env),
        mongo=mongo,
        bus=bus,
        document_outboxes=(PAYMENTS,),
        provider=env.provider,
        users=env.users,
    )
