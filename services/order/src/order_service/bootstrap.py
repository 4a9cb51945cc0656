"""Wiring of the order service: real adapters by default, the ones a test passes otherwise; the
loops beside the consumer (`background`) and the service's lifespan."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from bus.runtime import Background, Bus, service_lifespan
from kit.app import Lifespan
from kit.clock import Clock, utcnow
from kit.internal import internal_headers
from kit.metrics import add_scrape_hook
from kit.tracing_clients import TracingTransport
from order_service import replicas, store
from order_service.deps import Deps
from order_service.handlers import HANDLERS
from order_service.metrics import order_sampler
from order_service.precheck import HttpInventory, HttpUserDirectory
from order_service.settings import OrderSettings
from order_service.sweeper import DeadlineSweeper


def bootstrap(
    settings: OrderSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Deps:
    """The order service's dependencies; tests may pass Mongo, the bus, the clock, and an HTTP
    transport for the user and inventory reads."""
    # One pooled client for the synchronous reads of the pre-order check (user, inventory).
    http = httpx.AsyncClient(
        transport=TracingTransport(transport), timeout=settings.http_timeout_seconds
    )
    return Deps.wire(
        settings,
        HANDLERS,
        mongo=mongo,
        bus=bus,
        document_outboxes=(store.ORDERS,),
        clock=clock or utcnow,
        policy=settings.policy(),
        http=http,
        users=HttpUserDirectory(http, settings.user_url),
        stock=HttpInventory(http, settings.inventory_url, internal_headers(settings)),
    )


def background(deps: Deps) -> dict[str, Background]:
    """The deadline sweeper, on the service's clock."""
    settings = deps.settings
    sweeper = DeadlineSweeper(
        deps,
        interval=settings.sweep_interval_seconds,
        lease_seconds=settings.sweep_lease_seconds,
        max_failures=settings.sweep_max_failures,
    )
    return {"sweeper": sweeper}


def sample_statuses(app: FastAPI, deps: Deps) -> None:
    """The orders-per-status and past-deadline gauges, read when `/metrics` is scraped."""
    add_scrape_hook(app, "orders", order_sampler(deps.store, deps.clock))


def lifespan(settings: OrderSettings) -> Lifespan:
    """The shared service lifespan with the order's indexes, metric and sweeper."""
    return service_lifespan(
        settings,
        bootstrap,
        indexes=[*store.INDEXES, *replicas.INDEXES],
        on_started=sample_statuses,
        background=background,
    )
