"""Wiring of the payment service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from bus.runtime import Bus, Lifespan, service_lifespan
from kit.clock import Clock, utcnow
from kit.internal import internal_headers
from kit.mongo import Db, connect
from payment_service.deps import Deps
from payment_service.handlers import HANDLERS
from payment_service.provider import SANDBOX_INDEXES, PaymentProvider, SandboxProvider
from payment_service.settings import PaymentSettings
from payment_service.store import INDEXES, PAYMENTS
from payment_service.users import UserDirectory


def sandbox(settings: PaymentSettings, db: Db) -> SandboxProvider:
    """The sandbox processor (the only one this project has), its ledger in `db` (the service's
    own database: every replica sees what any of them did at the processor)."""
    return SandboxProvider(db, latency_seconds=settings.provider_latency_seconds)


def bootstrap(
    settings: PaymentSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
    provider: PaymentProvider | None = None,
    user_transport: httpx.AsyncBaseTransport | None = None,
) -> Deps:
    """The payment service's dependencies; tests may pass Mongo, bus, clock, provider and the
    transport that reaches the user service."""
    users = UserDirectory(
        settings.user_url,
        timeout_seconds=settings.user_timeout_seconds,
        headers=internal_headers(settings),
        transport=user_transport,
    )
    client = mongo if mongo is not None else connect(settings)
    return Deps.wire(
        settings,
        HANDLERS,
        mongo=client,
        bus=bus,
        document_outboxes=(PAYMENTS,),
        provider=provider or sandbox(settings, client[settings.database_name]),
        users=users,
        clock=clock or utcnow,
    )


async def drop_legacy(_: FastAPI, deps: Deps) -> None:
    """A database an older version indexed: drop what is no longer declared."""
    await deps.store.drop_legacy_indexes()


def lifespan(
    settings: PaymentSettings,
    *,
    bus: Bus | None = None,
    provider: PaymentProvider | None = None,
    user_transport: httpx.AsyncBaseTransport | None = None,
) -> Lifespan:
    """The shared service lifespan over `bootstrap` (with the test doubles given), the
    sandbox's indexes beside the service's, then the legacy indexes dropped."""
    wiring = partial(bootstrap, bus=bus, provider=provider, user_transport=user_transport)
    indexes = [*INDEXES, *SANDBOX_INDEXES]
    return service_lifespan(settings, wiring, indexes=indexes, on_started=drop_legacy)
