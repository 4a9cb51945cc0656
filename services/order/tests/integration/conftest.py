"""Fixtures for the order service: its wiring on a MongoDB-protocol server with an in-memory
bus (`wired`, milliseconds per test), or the whole service on the real broker (`order_service`)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from order_service.bootstrap import bootstrap
from order_service.commands import Caller, NewOrder, place_order
from order_service.deps import Deps
from order_service.domain import Cause, Order, Policy, ProductFacts
from order_service.main import create_app
from order_service.settings import OrderSettings
from order_service.store import IdempotentRequest
from pymongo import AsyncMongoClient

from bus import AmqpPublisher, BusConfig, BusConnection
from bus.fake import InMemoryBus
from bus.runtime import bus_config
from contracts import Envelope, Event
from contracts.envelope import Actor
from contracts.inventory import ProductCreated
from contracts.types import Address, Line, PaymentMethodSummary, Preferences
from contracts.user import UserProfileUpdated
from devkit.bus_testing import eventually, remove_topology
from kit.auth.principal import Principal, UserRole

CUSTOMER = Actor(user_id="u1", role="Customer")


def new_order(at: datetime) -> Order:
    """A freshly placed order of u1 for two books at 19.99."""
    return Order.place(
        order_id=f"o-{secrets.token_hex(4)}",
        user_id="u1",
        items=[("book", 2)],
        catalogue={"book": ProductFacts("book", "Book", 1999)},
        address_id="a1",
        payment_method_id="pm1",
        cause=Cause(at=at, actor=CUSTOMER),
    )


async def awaiting_payment(wired: Wired, now: datetime) -> str:
    """A saved order of u1 whose stock is reserved at `now`: it waits for payment for a minute."""
    order = new_order(now)
    policy = Policy(payment_window=timedelta(minutes=1))
    order.stock_reserved([Line(product_id="book", quantity=2)], now, Cause(at=now), policy)
    await wired.deps.store.save(order, None)
    return order.order_id


@dataclass
class RunningOrder:
    """A started order service and a publisher onto its exchange."""

    deps: Deps
    publisher: AmqpPublisher
    connection: BusConnection
    config: BusConfig

    async def publish(self, *envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            await self.publisher.publish(envelope)

    async def handled(self, envelope: Envelope[Any]) -> None:
        """Wait until every handler committed (or skipped) this envelope."""

        async def seen() -> bool:
            if await self.deps.db["inbox"].count_documents({"event_id": envelope.id}):
                return True
            # Saga steps keep the handled ids on the order itself (bus.documents).
            key = {"processed": {"$regex": f"^{re.escape(envelope.id)}\\|"}}
            return bool(await self.deps.db["orders"].count_documents(key))

        await eventually(seen, timeout=10, what=f"{envelope.type} handled")


@pytest.fixture
async def order_service(
    mongo_url: str, amqp_url: str, run_prefix: str
) -> AsyncIterator[RunningOrder]:
    """The order service with its own database and bus names, the real broker, torn down after."""
    tag = secrets.token_hex(4)
    settings = OrderSettings(
        mongo_url=mongo_url,
        amqp_url=amqp_url,
        db_prefix=f"t{tag}_",
        bus_prefix=f"{run_prefix}{tag}.",
        bus_retry_delays=(0.2, 0.5),
    )
    app = create_app(settings)
    config = bus_config(settings)
    async with app.router.lifespan_context(app):
        deps: Deps = app.state.deps
        connection = BusConnection(amqp_url, name=f"{settings.bus_prefix}test")
        await connection.connect()
        publisher = AmqpPublisher(connection, config)
        try:
            yield RunningOrder(deps, publisher, connection, config)
        finally:
            await publisher.close()
            await connection.close()
            await deps.mongo.drop_database(deps.db.name)
    await remove_topology(amqp_url, config)


# --- the wiring with an in-memory bus ---------------------------------------------------------

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def caller(user_id: str = "u1", role: UserRole = "Customer") -> Caller:
    """A caller as a route builds it (no bearer token: the replica answers)."""
    return Caller(Principal(user_id=user_id, role=role), Actor(user_id=user_id, role=role))


@dataclass
class Wired:
    """The order service's deps on the embedded store, its bus in memory, its clock the test's."""

    deps: Deps
    bus: InMemoryBus
    clock: Clock

    async def deliver(self, *events: Event, correlation_id: str = "test") -> None:
        """Publish events as other services would, and run the service's handlers on them."""
        for event in events:
            await self.bus.publish(Envelope.wrap(event, correlation_id=correlation_id))
        await self.bus.deliver()

    async def customer(self, user_id: str = "u1", *, partial: str = "ask") -> None:
        """A customer with a complete profile (address a1, card pm1) in the replica."""
        await self.deliver(
            UserProfileUpdated(
                user_id=user_id,
                username=f"{user_id}-name",
                email=f"{user_id}@example.com",
                is_profile_complete=True,
                addresses=(
                    Address(
                        address_id="a1", line1="1 rue", city="Paris", zip="75001", country="FR"
                    ),
                ),
                default_address_id="a1",
                payment_methods=(
                    PaymentMethodSummary(payment_method_id="pm1", type="card", is_default=True),
                    PaymentMethodSummary(payment_method_id="pm2", type="card"),
                ),
                preferences=Preferences(partial_fulfillment=partial),
            )
        )

    async def product(self, product_id: str = "book", price_cents: int = 1_999) -> None:
        await self.deliver(
            ProductCreated(
                product_id=product_id,
                name=product_id.title(),
                category="c",
                price_cents=price_cents,
            )
        )

    async def place(
        self, key: str = "k1", items: tuple[tuple[str, int], ...] = (("book", 2),), **given: Any
    ) -> IdempotentRequest:
        return await place_order(self.deps, caller(), NewOrder(items, **given), key)

    async def order(self, order_id: str) -> Order:
        return await self.deps.store.load(order_id)


@pytest.fixture
async def wired(mongo_client: AsyncMongoClient[Any], db_name: str) -> AsyncIterator[Wired]:
    """The order service's wiring (no broker, no HTTP server), one database per test."""
    bus, clock = InMemoryBus(), Clock()
    settings = OrderSettings(mongo_db=db_name, max_payment_retries=2)
    deps = bootstrap(settings, mongo=mongo_client, bus=bus, clock=clock)
    try:
        yield Wired(deps, bus, clock)
    finally:
        await deps.close()
        await mongo_client.drop_database(db_name)
