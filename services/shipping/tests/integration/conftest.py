"""Fixtures for the shipping service on the embedded MongoDB-protocol server and the in-memory
bus: the commands' wiring (`deps`, a clock the test moves) and the whole app (`start_shipping`,
lifespan and all, over HTTP)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from shipping_service.bootstrap import bootstrap
from shipping_service.deps import Deps
from shipping_service.main import create_app
from shipping_service.settings import ShippingSettings
from shipping_service.store import INDEXES

from bus.fake import InMemoryBus
from contracts import Envelope
from contracts.order import OrderConfirmed
from contracts.types import Address, PricedLine
from kit.auth import SigningKey, issue_access_token, use_static_keys
from kit.clock import utcnow
from kit.mongo import ensure_indexes

SIGNING_KEY = SigningKey.generate()
# The auto-advance of the commands' tests (the service's setting).
AUTO_ADVANCE_SECONDS = 30.0

ADDRESS = Address(
    address_id="a1", line1="1 Quay Street", city="Lyon", zip="69002", country="FR", is_default=True
)


class MovableClock:
    """The service's clock in a test: it stands still until the test moves it (on whole
    milliseconds, as Mongo stores times, so a stored time equals the clock's)."""

    def __init__(self, start: datetime | None = None) -> None:
        now = start or utcnow()
        self.now = now.replace(microsecond=now.microsecond // 1000 * 1000)

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


@pytest.fixture
async def deps(
    mongo_client: AsyncMongoClient[Any], db_name: str, bus: InMemoryBus, clock: MovableClock
) -> AsyncIterator[Deps]:
    """The service wired to the embedded store (a database of its own), the in-memory bus and
    a movable clock: commands run for real, `await bus.deliver()` runs the service's handlers."""
    settings = ShippingSettings(
        mongo_db=db_name, env="test", auto_advance_seconds=AUTO_ADVANCE_SECONDS
    )
    wired = bootstrap(settings, mongo=mongo_client, bus=bus, clock=clock)
    await ensure_indexes(wired.db, INDEXES)
    yield wired
    await mongo_client.drop_database(db_name)


def confirmed(
    order_id: str,
    *lines: tuple[str, int],
    user_id: str = "u1",
    address: Address | None = ADDRESS,
) -> Envelope[OrderConfirmed]:
    """An OrderConfirmed as the order service sends it (a new envelope each call: a re-send)."""
    items = tuple(PricedLine(product_id=p, quantity=q, price_cents=1000) for p, q in lines)
    event = OrderConfirmed(
        order_id=order_id,
        user_id=user_id,
        items=items,
        total_cents=sum(1000 * q for _, q in lines),
        payment_method_id="pm1",
        payment_id="pay1",
        address=address,
    )
    return Envelope.wrap(event, correlation_id=order_id)


class Running:
    """A started shipping app: its deps, its in-memory bus and an HTTP client."""

    def __init__(self, app: FastAPI, bus: InMemoryBus, client: httpx.AsyncClient) -> None:
        self.app = app
        self.bus = bus
        self.http = client

    @property
    def deps(self) -> Deps:
        deps: Deps = self.app.state.deps
        return deps

    async def confirm(self, *envelopes: Envelope[OrderConfirmed]) -> None:
        """Hand events to the service as its consumer would, and let its handlers run."""
        for envelope in envelopes:
            await self.bus.publish(envelope)
        await self.bus.deliver()


type Start = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start_shipping(mongo_url: str) -> Start:
    """Start the service (lifespan and all) on the in-memory bus, a database of its own."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        settings = ShippingSettings(
            mongo_url=mongo_url, db_prefix=f"t{secrets.token_hex(4)}_", env="test", **overrides
        )
        bus = InMemoryBus()
        app = create_app(settings, bus=bus)
        use_static_keys(app, SIGNING_KEY)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://shipping") as client,
        ):
            running = Running(app, bus, client)
            try:
                yield running
            finally:
                await running.deps.mongo.drop_database(running.deps.db.name)

    return start


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
