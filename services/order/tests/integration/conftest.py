"""Fixtures for the order service against the real broker and a MongoDB-protocol server."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from order_service.bootstrap import Deps
from order_service.domain import Cause, Order, ProductFacts
from order_service.main import create_app
from order_service.settings import OrderSettings

from bus import AmqpPublisher, BusConfig, BusConnection
from bus.runtime import bus_config
from contracts import Envelope
from contracts.envelope import Actor
from devkit.bus_testing import eventually, remove_topology

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
