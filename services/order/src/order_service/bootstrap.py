"""Wiring of the order service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from kit.internal import internal_headers
from kit.tracing_clients import TracingTransport
from order_service.handlers import handler_table
from order_service.precheck import HttpInventory, HttpUserDirectory, StockChecker, UserDirectory
from order_service.settings import OrderSettings
from order_service.store import ORDERS


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the order service's routes and handlers work with."""

    settings: OrderSettings
    http: httpx.AsyncClient
    users: UserDirectory
    stock: StockChecker

    async def close(self) -> None:
        """Close the pre-order check's HTTP client."""
        await self.http.aclose()


def bootstrap(
    settings: OrderSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Deps:
    """The order service's dependencies; tests may pass Mongo, the bus, an HTTP transport."""
    # One pooled client for the synchronous reads of the pre-order check (user, inventory).
    http = httpx.AsyncClient(
        transport=TracingTransport(transport), timeout=settings.http_timeout_seconds
    )
    return Deps.wire(
        settings,
        handler_table(settings.policy()),
        mongo=mongo,
        bus=bus,
        document_outboxes=(ORDERS,),
        http=http,
        users=HttpUserDirectory(http, settings.user_url),
        stock=HttpInventory(http, settings.inventory_url, internal_headers(settings)),
    )
