"""Wiring of the payment service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from payment_service.handlers import PaymentEnv, handler_table
from payment_service.provider import PaymentProvider, SandboxProvider
from payment_service.settings import PaymentSettings
from payment_service.users import UserDirectory


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the payment service's routes and handlers work with."""

    settings: PaymentSettings
    provider: PaymentProvider
    users: UserDirectory


def bootstrap(
    settings: PaymentSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    provider: PaymentProvider | None = None,
    user_transport: httpx.AsyncBaseTransport | None = None,
) -> Deps:
    """The payment service's dependencies; tests may pass Mongo, bus, provider, user transport."""
    # The sandbox is the only processor this project has; a real one would plug in here.
    provider = provider or SandboxProvider(latency_seconds=settings.provider_latency_seconds)
    users = UserDirectory(
        settings.user_url, timeout_seconds=settings.user_timeout_seconds, transport=user_transport
    )
    env = PaymentEnv(
        provider=provider,
        users=users,
        max_attempts=settings.max_attempts,
        backoff_base=settings.backoff_base_seconds,
        backoff_cap=settings.backoff_cap_seconds,
        fraud_threshold=settings.fraud_threshold,
    )
    return Deps.wire(
        settings, handler_table(env), mongo=mongo, bus=bus, provider=provider, users=users
    )
