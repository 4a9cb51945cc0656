"""Fixtures for the inventory service against the real broker and a MongoDB-protocol server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from inventory_service.bootstrap import bootstrap
from inventory_service.deps import Deps
from inventory_service.main import create_app
from inventory_service.settings import InventorySettings
from inventory_service.store import INDEXES
from pymongo import AsyncMongoClient

from bus import AmqpPublisher, BusConnection
from bus.fake import InMemoryBus, NullBus
from bus.runtime import bus_config
from contracts import Envelope
from contracts.order import OrderCancelled, OrderPaid, OrderPlaced
from contracts.types import Line, PricedLine
from devkit.bus_testing import Probe, remove_topology
from kit.auth import SigningKey, issue_access_token, use_static_keys
from kit.clock import utcnow
from kit.mongo import ensure_indexes

SIGNING_KEY = SigningKey.generate()


@pytest.fixture
def settings_for(mongo_url: str, run_prefix: str) -> Callable[..., InventorySettings]:
    """Settings with a database and bus names of their own."""
    tag = secrets.token_hex(4)

    def make(**overrides: Any) -> InventorySettings:
        values: dict[str, Any] = {
            "mongo_url": mongo_url,
            "db_prefix": f"t{tag}_",
            "bus_prefix": f"{run_prefix}{tag}.",
            "bus_retry_delays": (0.2, 0.5),
            "sweep_interval_seconds": 0.2,
        }
        values.update(overrides)
        return InventorySettings(**values)

    return make


class MovableClock:
    """The service's clock in a test: it stands still until the test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


# Reservations made by the commands' tests hold this long (the service's setting).
TTL_SECONDS = 60.0


@pytest.fixture
async def deps(
    mongo_client: AsyncMongoClient[Any], db_name: str, bus: InMemoryBus, clock: MovableClock
) -> AsyncIterator[Deps]:
    """The service wired to the embedded store (a database of its own), the in-memory bus and
    a movable clock: commands run for real, `await bus.deliver()` runs the service's handlers."""
    settings = InventorySettings(mongo_db=db_name, env="test", reservation_ttl_seconds=TTL_SECONDS)
    wired = bootstrap(settings, mongo=mongo_client, bus=bus, clock=clock)
    await ensure_indexes(wired.db, INDEXES)
    yield wired
    await mongo_client.drop_database(db_name)


class Running:
    """A started inventory app: its deps, an HTTP client, and (with a broker) a way to publish."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.http = client
        self.publisher: AmqpPublisher | None = None
        self.probe: Probe | None = None

    @property
    def deps(self) -> Deps:
        deps: Deps = self.app.state.deps
        return deps

    async def publish(self, envelope: Envelope[Any]) -> None:
        assert self.publisher is not None
        await self.publisher.publish(envelope)

    def emitted(self, event_type: str) -> list[dict[str, Any]]:
        """Envelopes (wire dicts) of `event_type` the probe saw, in arrival order."""
        assert self.probe is not None
        found = [Envelope.from_json(m.body) for m in self.probe.messages]
        return [e.to_wire() for e in found if e.type == event_type]


type Start = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
async def start_inventory(
    settings_for: Callable[..., InventorySettings], amqp_url: str
) -> AsyncIterator[Start]:
    """Start the service (lifespan and all); `broker=True` runs the real bus and a probe."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    @asynccontextmanager
    async def start(*, broker: bool = False, **overrides: Any) -> AsyncIterator[Running]:
        settings = settings_for(amqp_url=amqp_url, **overrides)
        app = create_app(settings, bus=None if broker else NullBus())
        use_static_keys(app, SIGNING_KEY)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://inventory") as client,
        ):
            running = Running(app, client)
            connection: BusConnection | None = None
            if broker:
                config = bus_config(settings)
                connection = BusConnection(amqp_url, name=f"{settings.bus_prefix}test")
                await connection.connect()
                running.publisher = AmqpPublisher(connection, config)
                channel = await connection.channel()
                running.probe = await Probe.bind(channel, config, "stock.#", "product.#")
                cleanups.append(lambda: remove_topology(amqp_url, config))
            try:
                yield running
            finally:
                if running.publisher is not None:
                    await running.publisher.close()
                if connection is not None:
                    await connection.close()
                await running.deps.mongo.drop_database(running.deps.db.name)

    yield start
    for cleanup in cleanups:
        await cleanup()


def token(role: str, user_id: str | None = None) -> dict[str, str]:
    """An Authorization header for a user with `role`."""
    access = issue_access_token(
        SIGNING_KEY,
        sub=user_id or f"u-{role.lower()}-{secrets.token_hex(3)}",
        role=role,
        issuer="shop-user",
        audience="shop",
    )
    return {"Authorization": f"Bearer {access}"}


# The order saga's events as inventory receives them: every line priced 10.00, one customer.


def placed(order_id: str, *lines: tuple[str, int]) -> Envelope[OrderPlaced]:
    items = tuple(PricedLine(product_id=p, quantity=q, price_cents=1000) for p, q in lines)
    event = OrderPlaced(
        order_id=order_id,
        user_id="u1",
        items=items,
        total_cents=sum(1000 * q for _, q in lines),
        address_id="a1",
        payment_method_id="pm1",
    )
    return Envelope.wrap(event, correlation_id=order_id)


def cancelled(order_id: str, reason: Any = "CUSTOMER") -> Envelope[OrderCancelled]:
    event = OrderCancelled(order_id=order_id, user_id="u1", reason=reason)
    return Envelope.wrap(event, correlation_id=order_id)


def paid(order_id: str, *lines: tuple[str, int]) -> Envelope[OrderPaid]:
    event = OrderPaid(
        order_id=order_id,
        lines=tuple(Line(product_id=p, quantity=q) for p, q in lines),
        payment_id="pay1",
    )
    return Envelope.wrap(event, correlation_id=order_id)
